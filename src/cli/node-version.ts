// The oldest Node.js mailjail runs on, and the message for an older one. No imports: this runs
// before anything else is loaded (see main.ts).
export const MIN_NODE_MAJOR = 20;

/** The refusal text for a Node.js version below MIN_NODE_MAJOR, or undefined when it is new enough. */
export function nodeTooOld(version: string): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  if (major >= MIN_NODE_MAJOR) return undefined;
  return `mailjail needs Node.js ${MIN_NODE_MAJOR} or newer; this is Node.js ${version} (${process.execPath}).\n` +
    'The .deb and .rpm packages carry their own Node.js and need none. From a source checkout, install a\n' +
    'newer Node.js as the README says ("Node.js for a source checkout").\n';
}
