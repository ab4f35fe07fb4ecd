// Vite config for the generated app's frontend.
// The dev server is the single origin of the live preview: the page and its `/api/*` calls both go
// through it, and it forwards `/api` to the backend, so the app needs no CORS and no absolute URLs.
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

const port = Number(process.env.PORT ?? 5173)
const backendPort = Number(process.env.BACKEND_PORT ?? 8000)
const backendUrl = process.env.BACKEND_URL ?? `http://127.0.0.1:${backendPort}`

// Behind the preview reverse proxy the browser reaches the dev server on another host and port
// (e.g. https://abc.preview.localhost). PREVIEW_HMR_HOST / PREVIEW_HMR_PORT / PREVIEW_HMR_PROTOCOL
// tell the HMR client where to open its WebSocket; unset, it uses the page's own origin, which
// is right for a proxy that forwards WebSocket upgrades on the same host.
const hmrHost = process.env.PREVIEW_HMR_HOST
const hmrClientPort = process.env.PREVIEW_HMR_PORT ? Number(process.env.PREVIEW_HMR_PORT) : undefined
const hmrProtocol = process.env.PREVIEW_HMR_PROTOCOL as 'ws' | 'wss' | undefined

export default defineConfig({
  plugins: [react()],
  server: {
    host: process.env.HOST ?? '127.0.0.1',
    port,
    strictPort: true,
    // The preview is served under *.preview.localhost (and other proxy hosts); accept any Host.
    allowedHosts: true,
    hmr: {
      host: hmrHost,
      clientPort: hmrClientPort,
      protocol: hmrProtocol,
    },
    proxy: {
      '/api': {
        target: backendUrl,
        changeOrigin: true,
      },
    },
  },
  preview: {
    host: process.env.HOST ?? '127.0.0.1',
    port,
    strictPort: true,
    allowedHosts: true,
    proxy: {
      '/api': {
        target: backendUrl,
        changeOrigin: true,
      },
    },
  },
})
