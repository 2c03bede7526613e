"use client";
// Event photos: upload the photos of an event (every face in each is indexed by face-service under a
// photo id), then "find me" with a selfie: the photos you are in, your face boxed in each.
// face-service stores no image, only each face's box and embedding, so the photos themselves stay
// in this browser's memory (object URLs): reloading the page forgets them, not their faces.
// People: the photos' faces grouped into the people they show (face-service re-clusters them in the
// background while the page polls), each shown by its best face; a person named is then known to
// "Who is in this photo?"; a person forgotten is deleted with every face of it.
import { type FormEvent, useEffect, useRef, useState } from "react";

import type {
  BrowserError,
  EventPeopleResult,
  EventPerson,
  FindPhotosResult,
  ForgetPersonResult,
  GroupingResult,
  IndexPhotosResult,
  NamePersonResult,
  SearchResult,
} from "@/lib/api";
import { getJson, postForm } from "@/lib/post-form";

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
      <EventPeople images={images} />
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

const POLL_MS = 500; // between two questions "how far is the grouping?"

function EventPeople({ images }: { images: Map<string, string> }) {
  const [people, setPeople] = useState<EventPerson[]>();
  const [progress, setProgress] = useState<number>();
  const [error, setError] = useState<BrowserError>();

  async function group() {
    setError(undefined);
    setPeople(undefined);
    setProgress(0);
    let outcome = await postForm<GroupingResult>("/api/photos/people/group");
    while (outcome.ok && outcome.data.state !== "done" && outcome.data.state !== "failed") {
      setProgress(outcome.data.progress);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      outcome = await getJson<GroupingResult>("/api/photos/people/group");
    }
    setProgress(undefined);
    if (!outcome.ok) return setError(outcome.error);
    if (outcome.data.state === "failed") {
      return setError({ error: "The photos could not be grouped. Please try again.", code: "grouping_failed", requestId: outcome.data.requestId });
    }
    await refresh();
  }

  async function refresh() {
    const listed = await getJson<EventPeopleResult>("/api/photos/people");
    if (listed.ok) setPeople(listed.data.people);
    else setError(listed.error);
  }

  return (
    <div>
      <h3>People</h3>
      <p>Group the uploaded photos&apos; faces into the people they show, then name someone.</p>
      <button type="button" onClick={group} disabled={progress !== undefined} data-testid="event-group-button">
        {progress === undefined ? "Group the photos into people" : `Grouping… ${Math.round(progress * 100)}%`}
      </button>
      {error && <ErrorMessage error={error} />}
      {people && (
        <p data-testid="event-people-count">
          {people.length === 0 ? "Nobody is in more than one photo." : `${people.length} person(s) found.`}
        </p>
      )}
      {people?.map((person) => (
        <EventPersonCard key={person.personId} person={person} url={person.photoId ? images.get(person.photoId) : undefined} onChanged={refresh} />
      ))}
      <IdentifyInEvent />
    </div>
  );
}

function EventPersonCard({ person, url, onChanged }: { person: EventPerson; url: string | undefined; onChanged: () => void }) {
  const [result, setResult] = useState<NamePersonResult>();
  const [error, setError] = useState<BrowserError>();
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);

  async function name(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setResult(undefined);
    setError(undefined);
    const form = new FormData(event.currentTarget);
    form.set("personId", person.personId);
    setBusy(true);
    const outcome = await postForm<NamePersonResult>("/api/photos/people/name", form);
    setBusy(false);
    if (!outcome.ok) return setError(outcome.error);
    setResult(outcome.data);
    onChanged();
  }

  // face-service deletes the person and every face of it, for good: asked once more before.
  // The list, asked again, no longer has it.
  async function forget() {
    setConfirming(false);
    setResult(undefined);
    setError(undefined);
    const form = new FormData();
    form.set("personId", person.personId);
    setBusy(true);
    const outcome = await postForm<ForgetPersonResult>("/api/photos/people/forget", form);
    setBusy(false);
    if (!outcome.ok) return setError(outcome.error);
    onChanged();
  }

  return (
    <figure data-testid="event-person" data-person-id={person.personId}>
      {url ? (
        <BoxedPhoto url={url} photoId={person.photoId ?? ""} bbox={person.bbox} testId="event-person-box" />
      ) : (
        <p>Best face in {person.photoId ?? "a photo"} (its image is not in this browser)</p>
      )}
      <figcaption>
        <span data-testid="event-person-faces">{person.faces} face(s)</span>
        {person.name && <span data-testid="event-person-name">: {person.name}</span>}
      </figcaption>
      <form onSubmit={name}>
        <input type="text" name="name" placeholder="Their name" required data-testid="event-person-name-input" />
        <button type="submit" disabled={busy} data-testid="event-person-name-button">
          {busy ? "Naming…" : "Name"}
        </button>
        {error && <ErrorMessage error={error} />}
        {result && <span data-testid="event-person-named"> Named {result.name}: {result.faces} face(s).</span>}
      </form>
      {confirming ? (
        <p role="alertdialog" data-testid="event-person-forget-confirm">
          Forget this person and their {person.faces} face(s)? This cannot be undone.{" "}
          <button type="button" onClick={forget} disabled={busy} data-testid="event-person-forget-yes">
            Yes, forget
          </button>{" "}
          <button type="button" onClick={() => setConfirming(false)} data-testid="event-person-forget-cancel">
            Cancel
          </button>
        </p>
      ) : (
        <button type="button" onClick={() => setConfirming(true)} disabled={busy} data-testid="event-person-forget-button">
          Forget this person
        </button>
      )}
    </figure>
  );
}

function IdentifyInEvent() {
  const [result, setResult] = useState<SearchResult>();
  const [error, setError] = useState<BrowserError>();

  async function identify(file: File | undefined) {
    setResult(undefined);
    setError(undefined);
    if (!file) return;
    const form = new FormData();
    form.append("photo", file);
    const outcome = await postForm<SearchResult>("/api/photos/people/identify", form);
    if (outcome.ok) setResult(outcome.data);
    else setError(outcome.error);
  }

  return (
    <div>
      <h4>Who is in this photo?</h4>
      <label>
        A photo: <input type="file" accept="image/*" data-testid="event-identify-input" onChange={(e) => identify(e.target.files?.[0])} />
      </label>
      {error && <ErrorMessage error={error} />}
      {result && (
        <ul data-testid="event-identified">
          {result.faces.map((face, index) => (
            <li key={index} data-testid="event-identified-face">
              {face.name ?? "unknown"}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A photo with one face boxed: the box is in the photo's pixels, the SVG's viewBox the photo's size. */
function BoxedPhoto({ url, photoId, bbox, testId }: { url: string; photoId: string; bbox: number[]; testId: string }) {
  const [size, setSize] = useState<{ width: number; height: number }>();
  const mark = size ? Math.max(2, size.width / 250) : 2;
  const [x1 = 0, y1 = 0, x2 = 0, y2 = 0] = bbox;
  return (
    <div className="photo" style={{ maxWidth: 360 }}>
      <img
        src={url}
        alt={`Photo ${photoId}`}
        onLoad={(e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
      />
      {size && bbox.length === 4 && (
        <svg viewBox={`0 0 ${size.width} ${size.height}`}>
          <rect x={x1} y={y1} width={x2 - x1} height={y2 - y1} fill="none" stroke="#00e676" strokeWidth={mark} data-testid={testId} />
        </svg>
      )}
    </div>
  );
}
