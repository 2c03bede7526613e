// Next.js 16.3 and later name the URL Pattern API's types in their own declarations
// (next/dist/server/web/spec-extension/url-pattern.d.ts). TypeScript 6's lib.dom has these types,
// TypeScript 5.9's does not: with "skipLibCheck": false, `next build` fails with "Cannot find name
// 'URLPatternInput'". Here they are, as types only (nothing exists at run time because of them).
// Delete this file on TypeScript 6, or if you keep "skipLibCheck": true.
interface URLPatternInit {
  protocol?: string;
  username?: string;
  password?: string;
  hostname?: string;
  port?: string;
  pathname?: string;
  search?: string;
  hash?: string;
  baseURL?: string;
}
type URLPatternInput = string | URLPatternInit;
interface URLPatternOptions {
  ignoreCase?: boolean;
}
interface URLPatternComponentResult {
  input: string;
  groups: Record<string, string | undefined>;
}
interface URLPatternResult {
  inputs: URLPatternInput[];
  protocol: URLPatternComponentResult;
  username: URLPatternComponentResult;
  password: URLPatternComponentResult;
  hostname: URLPatternComponentResult;
  port: URLPatternComponentResult;
  pathname: URLPatternComponentResult;
  search: URLPatternComponentResult;
  hash: URLPatternComponentResult;
}
interface URLPattern {
  readonly hasRegExpGroups: boolean;
  readonly protocol: string;
  readonly username: string;
  readonly password: string;
  readonly hostname: string;
  readonly port: string;
  readonly pathname: string;
  readonly search: string;
  readonly hash: string;
  exec(input?: URLPatternInput, baseURL?: string | URL): URLPatternResult | null;
  test(input?: URLPatternInput, baseURL?: string | URL): boolean;
}
