// Tiny typed client for the backend. Every call goes to `${API_URL}${path}`, where API_URL is
// VITE_API_URL when set (e.g. a deployed backend) and otherwise '' — same origin, so `/api/...`
// goes through the Vite dev server's proxy to the backend.
//
//   const items = await api.get<Item[]>('/api/items')
//   const item = await api.post<Item>('/api/items', { name: 'milk' })

export const API_URL: string = (import.meta.env.VITE_API_URL ?? '').replace(/\/+$/, '')

/** A failed request: non-2xx status (`status` > 0) or network failure (`status` === 0). */
export class ApiError extends Error {
  readonly status: number
  readonly method: string
  readonly path: string
  /** Parsed JSON body of the error response, or its text, when there was one. */
  readonly body: unknown

  constructor(method: string, path: string, status: number, message: string, body?: unknown) {
    super(`${method} ${path} failed${status ? ` (${status})` : ''}: ${message}`)
    this.name = 'ApiError'
    this.status = status
    this.method = method
    this.path = path
    this.body = body
  }
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** Extracts a readable message from FastAPI-style error bodies ({"detail": ...}). */
function errorMessage(body: unknown, fallback: string): string {
  if (body && typeof body === 'object' && 'detail' in body) {
    const detail = (body as { detail: unknown }).detail
    if (typeof detail === 'string') return detail
    // 422 validation errors: [{loc: [...], msg: '...'}, ...]
    if (Array.isArray(detail)) {
      return detail
        .map((d) => {
          const e = d as { loc?: unknown[]; msg?: string }
          const where = Array.isArray(e.loc) ? e.loc.filter((p) => p !== 'body').join('.') : ''
          return where ? `${where}: ${e.msg ?? 'invalid'}` : (e.msg ?? 'invalid')
        })
        .join('; ')
    }
    return JSON.stringify(detail)
  }
  if (typeof body === 'string' && body.trim()) return body.trim().slice(0, 300)
  return fallback
}

export async function request<T>(method: Method, path: string, body?: unknown, init?: RequestInit): Promise<T> {
  const headers = new Headers(init?.headers)
  headers.set('Accept', 'application/json')
  if (body !== undefined) headers.set('Content-Type', 'application/json')

  let res: Response
  try {
    res = await fetch(`${API_URL}${path}`, {
      ...init,
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch (err) {
    throw new ApiError(method, path, 0, `network error (is the backend running?): ${String(err)}`)
  }

  const text = await res.text()
  let data: unknown = undefined
  if (text) {
    const isJson = (res.headers.get('content-type') ?? '').includes('json')
    if (isJson) {
      try {
        data = JSON.parse(text)
      } catch {
        throw new ApiError(method, path, res.status, 'response is not valid JSON', text)
      }
    } else {
      data = text
    }
  }

  if (!res.ok) throw new ApiError(method, path, res.status, errorMessage(data, res.statusText), data)
  return data as T
}

export const api = {
  get: <T>(path: string, init?: RequestInit) => request<T>('GET', path, undefined, init),
  post: <T>(path: string, body?: unknown, init?: RequestInit) => request<T>('POST', path, body, init),
  put: <T>(path: string, body?: unknown, init?: RequestInit) => request<T>('PUT', path, body, init),
  patch: <T>(path: string, body?: unknown, init?: RequestInit) => request<T>('PATCH', path, body, init),
  delete: <T = void>(path: string, init?: RequestInit) => request<T>('DELETE', path, undefined, init),
}

// Shapes returned by the template backend (backend/app/main.py). Keep in sync with its models.
export interface Health {
  status: string
}

export interface Item {
  id: number
  name: string
  created_at: string
}
