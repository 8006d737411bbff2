// A single-page app: the API process serves index.html for every dashboard path and the
// pages render in the browser, talking to the API (no server-side rendering).
export const ssr = false;
export const prerender = false;
export const trailingSlash = 'never';
