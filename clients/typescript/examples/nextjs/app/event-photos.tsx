"use client";
// Event photos: upload the photos of an event (every face in each is indexed by face-service under a
// photo id), then "find me" with a selfie: the photos you are in, your face boxed in each.
// face-service stores no image, only each face's box and embedding, so the photos themselves stay
// in this browser's memory (object URLs): reloading the page forgets them, not their faces.
import { type FormEvent, useEffect, useRef, useState } from "react";

import type { BrowserError, FindPhotosResult, IndexPhotosResult } from "@/lib/api";
import { postForm } from "@/lib/post-form";

import { ErrorMessage } from "./error-message";

export function EventPhotos() {
  // photo id -> the uploaded image's object URL, for this page's life only
  const [images, setImages] = useState<Map<string, string>>(new Map());
  const kept = useRef(images);
  kept.current = images;
  useEffect(() => () => kept.current.forEach((url) => URL.revokeObjectURL(url)), []);

  return (
    <section>
      <h2>Event photos</h2>
      <p>
        Upload the photos of an event, then find yourself in them with a selfie. face-service keeps only the faces
        (their position and embedding), never the photos: they stay in this browser, and reloading the page forgets
        them.
      </p>
      <UploadPhotos
        onUploaded={(added) =>
          setImages((current) => {
            const next = new Map(current);
            for (const [id, url] of added) {
              const previous = next.get(id);
              if (previous) URL.revokeObjectURL(previous);
              next.set(id, url);
            }
            return next;
          })
        }
      />
      <FindMe images={images} />
    </section>
  );
}

function UploadPhotos({ onUploaded }: { onUploaded: (added: [string, string][]) => void }) {
  const [result, setResult] = useState<IndexPhotosResult>();
  const [error, setError] = useState<BrowserError>();
  const [busy, setBusy] = useState(false);

  async function upload(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setResult(undefined);
    setError(undefined);
    const form = new FormData(event.currentTarget);
    const files = form.getAll("photos").filter((file): file is File => file instanceof File && file.size > 0);
    setBusy(true);
    const outcome = await postForm<IndexPhotosResult>("/api/photos/index", form);
    setBusy(false);
    if (!outcome.ok) return setError(outcome.error);
    setResult(outcome.data);
    // The route answers in the order the files were sent: keep each indexed one's image, by its photo id.
    const added: [string, string][] = [];
    outcome.data.photos.forEach((photo, index) => {
      const file = files[index];
      if (!photo.error && file) added.push([photo.photoId, URL.createObjectURL(file)]);
    });
    onUploaded(added);
  }

  return (
    <form onSubmit={upload}>
      <h3>Upload the photos</h3>
      <input type="file" name="photos" accept="image/*" multiple required data-testid="event-upload-input" />
      <button type="submit" disabled={busy} data-testid="event-upload-button">
        {busy ? "Uploading…" : "Upload"}
      </button>
      {error && <ErrorMessage error={error} />}
      {result && (
        <ul data-testid="event-uploaded">
          {result.photos.map((photo) => (
            <li key={photo.photoId} data-testid="event-uploaded-photo">
              {photo.file}:{" "}
              {photo.error ? (
                <ErrorMessage error={photo.error} />
              ) : (
                `${photo.faces} face(s)${photo.duplicate ? " (uploaded before)" : ""}`
              )}
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}

function FindMe({ images }: { images: Map<string, string> }) {
  const [result, setResult] = useState<FindPhotosResult>();
  const [error, setError] = useState<BrowserError>();
  const [busy, setBusy] = useState(false);

  async function find(file: File | undefined) {
    setResult(undefined);
    setError(undefined);
    if (!file) return;
    const form = new FormData();
    form.append("selfie", file);
    setBusy(true);
    const outcome = await postForm<FindPhotosResult>("/api/photos/find", form);
    setBusy(false);
    if (outcome.ok) setResult(outcome.data);
    else setError(outcome.error);
  }

  const shown = result?.photos.filter((photo) => images.has(photo.photoId)) ?? [];
  const elsewhere = result?.photos.filter((photo) => !images.has(photo.photoId)) ?? [];
  return (
    <div>
      <h3>Find me</h3>
      <label>
        A selfie: <input type="file" accept="image/*" data-testid="event-find-input" onChange={(e) => find(e.target.files?.[0])} />
      </label>
      {busy && <p>Looking for you…</p>}
      {error && <ErrorMessage error={error} />}
      {result && (
        <p data-testid="event-find-count">
          {result.photos.length === 0 ? "You are in none of the photos." : `You are in ${result.photos.length} photo(s).`}
        </p>
      )}
      {shown.map((photo) => (
        <MatchedPhoto key={photo.photoId} url={images.get(photo.photoId) ?? ""} {...photo} />
      ))}
      {elsewhere.length > 0 && (
        <p data-testid="event-not-here">
          Also in photos uploaded from elsewhere (their images are not in this browser):{" "}
          {elsewhere.map((photo) => photo.photoId).join(", ")}
        </p>
      )}
    </div>
  );
}

function MatchedPhoto({ url, photoId, bbox, similarity }: { url: string } & FindPhotosResult["photos"][number]) {
  const [size, setSize] = useState<{ width: number; height: number }>();
  // The box is in the photo's pixels: the SVG's viewBox is the photo's size, so it scales with it.
  const mark = size ? Math.max(2, size.width / 250) : 2;
  const [x1 = 0, y1 = 0, x2 = 0, y2 = 0] = bbox;
  return (
    <figure data-testid="event-match" data-photo-id={photoId}>
      <div className="photo">
        <img
          src={url}
          alt={`Photo ${photoId}`}
          onLoad={(e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
        />
        {size && bbox.length === 4 && (
          <svg viewBox={`0 0 ${size.width} ${size.height}`}>
            <rect
              x={x1}
              y={y1}
              width={x2 - x1}
              height={y2 - y1}
              fill="none"
              stroke="#00e676"
              strokeWidth={mark}
              data-testid="event-match-box"
            />
          </svg>
        )}
      </div>
      <figcaption data-testid="event-match-caption">
        {photoId}: similarity {similarity.toFixed(2)}
      </figcaption>
    </figure>
  );
}
