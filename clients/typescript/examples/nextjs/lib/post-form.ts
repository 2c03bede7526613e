// The page's ways to call this app's routes: a form in (or a GET), the route's JSON or its error out.
import type { BrowserError } from "./api";

export type Outcome<T> = { ok: true; data: T } | { ok: false; error: BrowserError };

export async function postForm<T>(path: string, form?: FormData): Promise<Outcome<T>> {
  return call<T>(path, { method: "POST", body: form });
}

/** A GET of one of this app's routes: its JSON or its error. */
export async function getJson<T>(path: string): Promise<Outcome<T>> {
  return call<T>(path, { method: "GET", cache: "no-store" });
}

async function call<T>(path: string, init: RequestInit): Promise<Outcome<T>> {
  try {
    const response = await fetch(path, init);
    const body: unknown = await response.json();
    return response.ok ? { ok: true, data: body as T } : { ok: false, error: body as BrowserError };
  } catch {
    return { ok: false, error: { error: "This site could not be reached. Check your connection.", code: "offline", requestId: "" } };
  }
}
