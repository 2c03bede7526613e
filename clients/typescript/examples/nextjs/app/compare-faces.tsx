"use client";
// Pick two photos: the largest face of each is compared, and the page says whether they are the
// same person, with the similarity and the service's threshold.
import { type FormEvent, useState } from "react";

import type { BrowserError, CompareResult } from "@/lib/api";
import { postForm } from "@/lib/post-form";

import { ErrorMessage } from "./error-message";

export function CompareFaces() {
  const [result, setResult] = useState<CompareResult>();
  const [error, setError] = useState<BrowserError>();
  const [busy, setBusy] = useState(false);

  async function compare(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setResult(undefined);
    setError(undefined);
    setBusy(true);
    const outcome = await postForm<CompareResult>("/api/faces/compare", new FormData(event.currentTarget));
    setBusy(false);
    if (outcome.ok) setResult(outcome.data);
    else setError(outcome.error);
  }

  return (
    <section>
      <h2>Same person?</h2>
      <form onSubmit={compare}>
        <input type="file" name="a" accept="image/*" required data-testid="compare-input-a" />
        <input type="file" name="b" accept="image/*" required data-testid="compare-input-b" />
        <button type="submit" disabled={busy} data-testid="compare-button">
          {busy ? "Comparing…" : "Compare"}
        </button>
      </form>
      {error && <ErrorMessage error={error} />}
      {result && (
        <p className="result">
          <strong data-testid="match">{result.match ? "Same person" : "Different people"}</strong>
          {" — similarity "}
          <span data-testid="similarity">{result.similarity.toFixed(2)}</span>
          {` (threshold ${result.threshold})`}
        </p>
      )}
    </section>
  );
}
