import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The web UI: built into dist/ui, which the server serves at `/` (server/ui/static.ts).
// Hashed file names under assets/ let the server cache them for good.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  plugins: [react()],
  // `npx vite --config ui/vite.config.ts`: live reload while developing, with the API, the TUF
  // repository and the registry of a running server (CONVOY_URL) behind the same origin.
  server: {
    proxy: Object.fromEntries(['/api', '/tuf', '/v2'].map((prefix) => [prefix, process.env.CONVOY_URL ?? 'http://127.0.0.1:8080'])),
  },
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    // Nothing inline: the server's Content-Security-Policy allows scripts and styles from 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
