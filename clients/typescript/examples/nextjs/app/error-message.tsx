import type { BrowserError } from "@/lib/api";

/** An error from this app's routes: the message for the person, and the reference to quote. */
export function ErrorMessage({ error }: { error: BrowserError }) {
  return (
    <p className="error" role="alert" data-testid="error">
      {error.error}
      {error.requestId && <small> (reference: {error.requestId})</small>}
    </p>
  );
}
