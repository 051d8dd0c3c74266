// Loaded before oidc-provider: fills in what Node.js 18 (Debian 12's nodejs) lacks and
// oidc-provider 9 uses. Node.js 20+ has all of it and this file changes nothing there.
if (typeof URL.parse !== 'function') {
  URL.parse = (input, base) => {
    try {
      return new URL(input, base);
    } catch {
      return null;
    }
  };
}
if (typeof URL.canParse !== 'function') {
  URL.canParse = (input, base) => URL.parse(input, base) !== null;
}
