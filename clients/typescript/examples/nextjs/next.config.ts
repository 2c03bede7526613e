import type { NextConfig } from "next";
import { fileURLToPath } from "node:url";

// This app lives inside the client's folder, which has a package-lock.json of its own: name this
// folder as the root, so that Next.js does not guess the parent. (An app of your own needs none of it.)
const root = fileURLToPath(new URL(".", import.meta.url));

const nextConfig: NextConfig = {
  turbopack: { root },
  outputFileTracingRoot: root,
};

export default nextConfig;
