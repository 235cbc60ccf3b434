import { defineConfig } from "vite";

// Stable names: the server and the Python package refer to app.js and app.css directly, and
// committed assets then change only when the sources do.
export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "../src/loopml/server/ui_dist",
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
    modulePreload: false,
    rollupOptions: {
      output: {
        entryFileNames: "app.js",
        chunkFileNames: "[name].js",
        assetFileNames: (asset) => (asset.names.some((name) => name.endsWith(".css")) ? "app.css" : "[name][extname]"),
      },
    },
  },
});
