"use client";
// Pick a photo: every face found in it is boxed, with its five landmarks (eyes, nose, mouth
// corners) and the detector's confidence drawn over the picture.
import { useEffect, useState } from "react";

import type { BrowserError, DetectResult } from "@/lib/api";
import { postForm } from "@/lib/post-form";

import { ErrorMessage } from "./error-message";

export function DetectFaces() {
  const [url, setUrl] = useState<string>();
  const [size, setSize] = useState<{ width: number; height: number }>();
  const [result, setResult] = useState<DetectResult>();
  const [error, setError] = useState<BrowserError>();
  const [busy, setBusy] = useState(false);
  useEffect(() => () => (url ? URL.revokeObjectURL(url) : undefined), [url]);

  async function detect(file: File | undefined) {
    setResult(undefined);
    setError(undefined);
    setSize(undefined);
    setUrl(file && URL.createObjectURL(file));
    if (!file) return;
    const form = new FormData();
    form.append("photo", file);
    setBusy(true);
    const outcome = await postForm<DetectResult>("/api/faces/detect", form);
    setBusy(false);
    if (outcome.ok) setResult(outcome.data);
    else setError(outcome.error);
  }

  // Coordinates are in the photo's pixels: the SVG's viewBox is the photo's size, so they scale with it.
  const mark = size ? Math.max(2, size.width / 250) : 2;
  return (
    <section>
      <h2>Faces in a photo</h2>
      <input type="file" accept="image/*" data-testid="detect-input" onChange={(e) => detect(e.target.files?.[0])} />
      {busy && <p>Looking for faces…</p>}
      {error && <ErrorMessage error={error} />}
      {result && (
        <p data-testid="face-count">
          {result.faces.length === 0 ? "No face found." : `${result.faces.length} face(s) found.`}
        </p>
      )}
      {url && (
        <div className="photo">
          <img
            src={url}
            alt="The chosen photo"
            onLoad={(e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
          />
          {size && result && (
            <svg viewBox={`0 0 ${size.width} ${size.height}`} data-testid="face-overlay">
              {result.faces.map(({ bbox, landmarks, confidence }, index) => {
                const [x1 = 0, y1 = 0, x2 = 0, y2 = 0] = bbox;
                return (
                  <g key={index} data-testid="face-box">
                    <rect x={x1} y={y1} width={x2 - x1} height={y2 - y1} fill="none" stroke="#00e676" strokeWidth={mark} />
                    {landmarks.map(([x = 0, y = 0], point) => (
                      <circle key={point} cx={x} cy={y} r={mark * 1.2} fill="#ff1744" data-testid="face-landmark" />
                    ))}
                    <text
                      x={x1}
                      y={Math.max(y1 - mark * 2, mark * 6)}
                      fontSize={mark * 6}
                      fill="#00e676"
                      stroke="#000"
                      strokeWidth={mark / 2}
                      paintOrder="stroke"
                      data-testid="face-confidence"
                    >
                      {confidence.toFixed(2)}
                    </text>
                  </g>
                );
              })}
            </svg>
          )}
        </div>
      )}
    </section>
  );
}
