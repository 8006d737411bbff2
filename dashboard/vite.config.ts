import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
	plugins: [sveltekit()],
	server: {
		// `npm run dev` talks to a kombify API on its default port.
		proxy: {
			'/v1': 'http://127.0.0.1:8420',
			'/docs': 'http://127.0.0.1:8420',
			'/docs-assets': 'http://127.0.0.1:8420',
			'/redoc': 'http://127.0.0.1:8420',
			'/openapi.json': 'http://127.0.0.1:8420'
		}
	}
});
