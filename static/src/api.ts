// Typed calls to the Worker's HTTP API. The base URL is fixed at build time (API_BASE) so the
// frontend can also be hosted on a separate origin.

declare const API_BASE: string;

export interface Check {
  ok: boolean;
  detail: string;
}

export interface LlmStatus {
  configured: boolean;
  providers: string[];
  base_url: string | null;
  default_model: string;
  setup_hint: string | null;
}

export interface Health {
  ok: boolean;
  azure_blob: Check;
  vm_api: Check;
  llm: LlmStatus;
}

export interface PublicConfig {
  llm: LlmStatus;
}

export const apiBase: string = typeof API_BASE === "string" ? API_BASE : "";

async function getJson<T>(path: string): Promise<T> {
  const r = await fetch(apiBase + path, { headers: { accept: "application/json" } });
  const text = await r.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`${path} answered HTTP ${r.status} with non-JSON`);
  }
}

export const getConfig = (): Promise<PublicConfig> => getJson<PublicConfig>("/api/config");
export const getHealth = (): Promise<Health> => getJson<Health>("/health");
