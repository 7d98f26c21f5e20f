import { redactRedisUrl } from './redis';

describe('redactRedisUrl', () => {
  it('drops the password and user so the URL can be logged', () => {
    expect(redactRedisUrl('redis://default:s3cret@redis.example:6379/0')).toBe('redis://redis.example:6379/0');
    expect(redactRedisUrl('rediss://:s3cret@redis:6380')).not.toMatch(/s3cret/);
  });

  it('keeps unix socket paths and refuses to echo garbage', () => {
    expect(redactRedisUrl('unix:///var/lib/neurotriage/redis.sock')).toBe('unix:///var/lib/neurotriage/redis.sock');
    expect(redactRedisUrl('not a url:secret')).toBe('(unparseable REDIS_URL)');
  });
});
