// The page's one way to call this app's routes: a form in, the route's JSON or its error out.
import type { BrowserError } from "./api";

export type Outcome<T> = { ok: true; data: T } | { ok: false; error: BrowserError };

export async function postForm<T>(path: string, form: FormData): Promise<Outcome<T>> {
  try {
    const response = await fetch(path, { method: "POST", body: form });
    const body: unknown = await response.json();
    return response.ok ? { ok: true, data: body as T } : { ok: false, error: body as BrowserError };
  } catch {
    return { ok: false, error: { error: "This site could not be reached. Check your connection.", code: "offline", requestId: "" } };
  }
}
