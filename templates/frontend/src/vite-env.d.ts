/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Base URL of the backend API. Unset: same origin, `/api` proxied by the Vite dev server. */
  readonly VITE_API_URL?: string
}

interface ImportMeta {
  readonly env: ImportMetaEnv
}
