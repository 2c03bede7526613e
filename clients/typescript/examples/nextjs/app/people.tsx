"use client";
// Enroll a person: type their name and pick a photo of them. Then pick any photo: every face in it
// is boxed, with the name of the person it matches and the similarity, or "unknown".
import { type FormEvent, useEffect, useState } from "react";

import type { BrowserError, EnrollResult, SearchResult } from "@/lib/api";
import { postForm } from "@/lib/post-form";

import { ErrorMessage } from "./error-message";

export function People() {
  return (
    <section>
      <h2>Who is this?</h2>
      <EnrollPerson />
      <FindPeople />
    </section>
  );
}

function EnrollPerson() {
  const [result, setResult] = useState<EnrollResult>();
  const [error, setError] = useState<BrowserError>();
  const [busy, setBusy] = useState(false);

  async function enroll(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setResult(undefined);
    setError(undefined);
    setBusy(true);
    const outcome = await postForm<EnrollResult>("/api/people/enroll", new FormData(event.currentTarget));
    setBusy(false);
    if (outcome.ok) setResult(outcome.data);
    else setError(outcome.error);
  }

  return (
    <form onSubmit={enroll}>
      <h3>Enroll a person</h3>
      <input type="text" name="name" placeholder="Their name" required data-testid="enroll-name" />
      <input type="file" name="photo" accept="image/*" required data-testid="enroll-input" />
      <button type="submit" disabled={busy} data-testid="enroll-button">
        {busy ? "Enrolling…" : "Enroll"}
      </button>
      {error && <ErrorMessage error={error} />}
      {result && (
        <p data-testid="enrolled">
          Enrolled as {result.name}
          {result.duplicate && " (this photo was already enrolled)"}
        </p>
      )}
    </form>
  );
}

function FindPeople() {
  const [url, setUrl] = useState<string>();
  const [size, setSize] = useState<{ width: number; height: number }>();
  const [result, setResult] = useState<SearchResult>();
  const [error, setError] = useState<BrowserError>();
  const [busy, setBusy] = useState(false);
  useEffect(() => () => (url ? URL.revokeObjectURL(url) : undefined), [url]);

  async function search(file: File | undefined) {
    setResult(undefined);
    setError(undefined);
    setSize(undefined);
    setUrl(file && URL.createObjectURL(file));
    if (!file) return;
    const form = new FormData();
    form.append("photo", file);
    setBusy(true);
    const outcome = await postForm<SearchResult>("/api/people/search", form);
    setBusy(false);
    if (outcome.ok) setResult(outcome.data);
    else setError(outcome.error);
  }

  // Coordinates are in the photo's pixels: the SVG's viewBox is the photo's size, so they scale with it.
  const mark = size ? Math.max(2, size.width / 250) : 2;
  const recognised = result?.faces.filter((face) => face.name !== null).length ?? 0;
  return (
    <div>
      <h3>Find them in a photo</h3>
      <input type="file" accept="image/*" data-testid="search-input" onChange={(e) => search(e.target.files?.[0])} />
      {busy && <p>Searching…</p>}
      {error && <ErrorMessage error={error} />}
      {result && (
        <p data-testid="search-count">
          {result.faces.length === 0 ? "No face found." : `${result.faces.length} face(s), ${recognised} recognised.`}
        </p>
      )}
      {url && (
        <div className="photo">
          <img
            src={url}
            alt="The photo searched"
            onLoad={(e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
          />
          {size && result && (
            <svg viewBox={`0 0 ${size.width} ${size.height}`} data-testid="search-overlay">
              {result.faces.map(({ bbox, name, similarity }, index) => {
                const [x1 = 0, y1 = 0, x2 = 0, y2 = 0] = bbox;
                const colour = name === null ? "#ffab00" : "#00e676";
                const font = name === null ? mark * 3.5 : mark * 5; // the people recognised stand out
                return (
                  <g key={index} data-testid="search-box">
                    <rect x={x1} y={y1} width={x2 - x1} height={y2 - y1} fill="none" stroke={colour} strokeWidth={mark} />
                    <text
                      x={x1}
                      y={Math.min(y2 + font * 1.1, size.height - mark)}
                      fontSize={font}
                      fontWeight={name === null ? "normal" : "bold"}
                      fill={colour}
                      stroke="#000"
                      strokeWidth={mark / 2}
                      paintOrder="stroke"
                      data-testid="search-label"
                    >
                      {name === null ? "unknown" : `${name} ${similarity?.toFixed(2)}`}
                    </text>
                  </g>
                );
              })}
            </svg>
          )}
        </div>
      )}
    </div>
  );
}
