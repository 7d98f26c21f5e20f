import { Writable } from 'node:stream';
import { createLogger } from './logger';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream };
}

test('an error from JSON.parse is logged by kind and stack, never with the text it quotes', () => {
  const { lines, stream } = capture();
  const log = createLogger('test', 'info', stream);
  let parseError: unknown;
  try {
    JSON.parse('Acute infarct in the left MCA territory, MRN 1234567');
  } catch (err) {
    parseError = err;
  }
  log.error({ err: parseError }, 'request failed');
  log.error({ err: new Error('Redis is not answering') }, 'request failed');
  const [parsed, other] = lines.map((l) => JSON.parse(l) as { err: { type: string; message: string; stack: string } });
  expect(lines[0]).not.toMatch(/Acute|1234567/);
  expect(parsed.err).toMatchObject({ type: 'SyntaxError', message: 'not valid JSON (the text is not logged: it may quote the data)' });
  expect(parsed.err.stack).toMatch(/^SyntaxError: not valid JSON .*\n\s+at /);
  // Other errors keep their message.
  expect(other.err).toMatchObject({ type: 'Error', message: 'Redis is not answering' });
});
