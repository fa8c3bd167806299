import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The page is served by tickcast itself (`tickcast up` serves web/dist at /); `npm run dev`
// proxies the API and WebSockets to a tickcast on 127.0.0.1:8080.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
  server: {
    // @tickcast/client is linked from ../clients/typescript: its files may be served too.
    fs: { allow: [".", "../clients/typescript"] },
    proxy: {
      "/edge": "http://127.0.0.1:8080",
      "/ws": { target: "ws://127.0.0.1:8080", ws: true },
    },
  },
});
