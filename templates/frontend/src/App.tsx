// Starter page: shows whether the backend is reachable and a small list backed by /api/items.
// Replace it with the real app; keep calls going through `api` from ./api.ts.
import { useCallback, useEffect, useState, type FormEvent } from 'react'
import { api, ApiError, type Health, type Item } from './api.ts'

type Status = { state: 'loading' } | { state: 'ok'; health: Health } | { state: 'error'; message: string }

function describe(err: unknown): string {
  return err instanceof ApiError || err instanceof Error ? err.message : String(err)
}

export default function App() {
  const [status, setStatus] = useState<Status>({ state: 'loading' })
  const [items, setItems] = useState<Item[]>([])
  const [name, setName] = useState('')
  const [error, setError] = useState<string | null>(null)

  const checkHealth = useCallback(async () => {
    setStatus({ state: 'loading' })
    try {
      setStatus({ state: 'ok', health: await api.get<Health>('/api/health') })
    } catch (err) {
      setStatus({ state: 'error', message: describe(err) })
    }
  }, [])

  const loadItems = useCallback(async () => {
    try {
      setItems(await api.get<Item[]>('/api/items'))
      setError(null)
    } catch (err) {
      setError(describe(err))
    }
  }, [])

  useEffect(() => {
    void checkHealth()
    void loadItems()
  }, [checkHealth, loadItems])

  async function addItem(e: FormEvent) {
    e.preventDefault()
    const trimmed = name.trim()
    if (!trimmed) return
    try {
      const item = await api.post<Item>('/api/items', { name: trimmed })
      setItems((prev) => [...prev, item])
      setName('')
      setError(null)
    } catch (err) {
      setError(describe(err))
    }
  }

  async function removeItem(id: number) {
    try {
      await api.delete(`/api/items/${id}`)
      setItems((prev) => prev.filter((i) => i.id !== id))
    } catch (err) {
      setError(describe(err))
    }
  }

  return (
    <main className="container">
      <h1>My App</h1>

      <section className="card">
        <h2>Backend</h2>
        <p data-testid="health-status">
          {status.state === 'loading' && <span className="badge">checking…</span>}
          {status.state === 'ok' && <span className="badge ok">{status.health.status}</span>}
          {status.state === 'error' && <span className="badge err">unreachable</span>}
        </p>
        {status.state === 'error' && <p className="error">{status.message}</p>}
        <button type="button" onClick={() => void checkHealth()}>
          Check again
        </button>
      </section>

      <section className="card">
        <h2>Items</h2>
        <form onSubmit={addItem} className="row">
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="New item" aria-label="New item" />
          <button type="submit" disabled={!name.trim()}>
            Add
          </button>
        </form>
        {error && <p className="error">{error}</p>}
        <ul className="list">
          {items.map((item) => (
            <li key={item.id}>
              <span>{item.name}</span>
              <button type="button" className="link" onClick={() => void removeItem(item.id)}>
                Delete
              </button>
            </li>
          ))}
          {items.length === 0 && <li className="muted">No items yet.</li>}
        </ul>
      </section>
    </main>
  )
}
