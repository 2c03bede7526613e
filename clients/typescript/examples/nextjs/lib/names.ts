// A person's name as a subject id of face-service, and back. Ids hold letters, digits and
// "._:@+=-", at most 128 of them: a space becomes "_", any other character "=" and its UTF-8 bytes
// in hex ("José Mourinho" is "Jos=C3=A9_Mourinho"), so an id stays readable and gives the name back.
// (An app with accounts would enroll its own user ids instead, and keep names in its database.)

const KEPT = /^[A-Za-z0-9.:@+-]$/;
export const MAX_ID_LENGTH = 128;

/** The name as typed, trimmed, its spaces collapsed ("" for none). */
export function cleanName(typed: string): string {
  return typed.trim().replace(/\s+/g, " ");
}

/** The subject id for a name (longer than MAX_ID_LENGTH for a name too long). */
export function subjectId(name: string): string {
  // "." and ".." are no ids (URLs would lose them as dot segments): a name of dots only keeps them escaped.
  if (/^\.+$/.test(name)) return "=2E".repeat(name.length);
  let id = "";
  for (const char of name) {
    if (char === " ") id += "_";
    else if (KEPT.test(char)) id += char;
    else for (const byte of new TextEncoder().encode(char)) id += `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return id;
}

/** The name a subject id stands for (an id enrolled some other way reads as itself, "_" as a space). */
export function nameOf(id: string): string {
  const bytes: number[] = [];
  for (let index = 0; index < id.length; index++) {
    const hex = id.slice(index + 1, index + 3);
    if (id[index] === "=" && /^[0-9A-F]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      index += 2;
    } else {
      bytes.push(id[index] === "_" ? 0x20 : id.charCodeAt(index));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
