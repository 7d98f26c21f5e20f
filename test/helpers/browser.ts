// Debian's Chromium for the page tests, driven by playwright-core (no browser download).
import { chromium, type Browser, type Page } from 'playwright-core';

/**
 * `hostRules`: Chromium's --host-resolver-rules (e.g. `MAP nt-ward.test 127.0.0.1`), to reach the loopback app by a
 * host name: a page on plain http:// to a name other than localhost is not a secure context, as on a ward network.
 */
export function launchChromium(opts: { hostRules?: string } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      ...(opts.hostRules ? [`--host-resolver-rules=${opts.hostRules}`] : []),
    ],
  });
}

/**
 * Waits until a JavaScript expression is truthy in the page. Playwright's waitForFunction(string) re-checks with
 * eval(), which the page's Content-Security-Policy (script-src 'self') refuses; page.evaluate() is not subject to it.
 */
export async function waitInPage(page: Page, expression: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`still false after ${timeoutMs} ms in the page: ${expression}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
