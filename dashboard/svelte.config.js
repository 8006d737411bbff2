import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// A single-page app: the API process serves index.html for every dashboard path.
		// precompress: FILE.br and FILE.gz beside each file, sent when the browser takes them.
		adapter: adapter({
			pages: 'build',
			assets: 'build',
			fallback: 'index.html',
			precompress: true,
			strict: true
		}),
		// The API serves the page with a Content-Security-Policy that allows SvelteKit's inline
		// bootstrap script by its hash (kombify/api/dashboard.py); no CSP meta tag here.
		output: { bundleStrategy: 'split' },
		version: { pollInterval: 0 }
	}
};

export default config;
