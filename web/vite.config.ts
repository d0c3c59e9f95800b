import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';
import { defineConfig } from 'vite';

// The page is built into the Python package (courier_local/web), so `make dev` needs no Node.
// Relative asset URLs: the same build is served by `courier dev` at / and by any static host.
export default defineConfig({
  plugins: [react(), tailwindcss()],
  base: './',
  // Shiki's web bundle (its ~50 commonest languages) instead of all ~230: the page ships in the
  // Python package, and a language the bundle lacks is shown as plain code.
  resolve: { alias: [{ find: /^shiki$/, replacement: 'shiki/bundle/web' }] },
  build: {
    outDir: '../local/src/courier_local/web',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
});
