// One page, one section per feature of face-service. Each section is a client component that talks
// to this app's own route handlers (app/api/...), never to face-service itself.
import { CompareFaces } from "./compare-faces";
import { DetectFaces } from "./detect-faces";
import { EventPhotos } from "./event-photos";
import { People } from "./people";

export default function Home() {
  return (
    <main>
      <h1>face-service from Next.js</h1>
      <DetectFaces />
      <CompareFaces />
      <People />
      <EventPhotos />
    </main>
  );
}
