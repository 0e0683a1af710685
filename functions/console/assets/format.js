// How values are shown. Money stays the API's string ("10.00"): it is never
// turned into a float. Where the page checks a sum, it counts cents as BigInt.

export const money = (amount, currency) => (amount == null ? '—' : `${amount} ${currency ?? ''}`.trim());

// "123.45" → 12345n; null for anything that is not the API's money format.
export function cents(amount) {
  const match = /^(-?)(\d+)\.(\d{2})$/.exec(String(amount ?? ''));
  if (!match) return null;
  const value = BigInt(match[2]) * 100n + BigInt(match[3]);
  return match[1] ? -value : value;
}

// True when `total` is exactly the sum of `parts` (all in the API's format).
export function sumHolds(total, parts) {
  const values = [total, ...parts].map(cents);
  if (values.some((v) => v === null)) return false;
  return values.slice(1).reduce((a, b) => a + b, 0n) === values[0];
}

// RFC 3339 as the API writes it, in UTC, without the fraction.
export function when(timestamp) {
  if (!timestamp) return '—';
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return String(timestamp);
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

// "2 h 05 min", "45 s": the time from `from` to `to` (both timestamps).
export function span(from, to) {
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (!Number.isFinite(ms)) return '—';
  const sign = ms < 0 ? '−' : '';
  let seconds = Math.round(Math.abs(ms) / 1000);
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days) return `${sign}${days} d ${hours} h`;
  if (hours) return `${sign}${hours} h ${String(minutes).padStart(2, '0')} min`;
  if (minutes) return `${sign}${minutes} min`;
  return `${sign}${seconds % 60} s`;
}

export const metres = (value) => (value == null ? '—' : `${Math.round(value)} m`);

export const degrees = (value) => (value == null ? '—' : Number(value).toFixed(5));

// A payload or event data in one line, for tables.
export function data(value) {
  if (value == null) return '—';
  if (typeof value !== 'object') return String(value);
  const entries = Object.entries(value);
  if (!entries.length) return '—';
  return entries.map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`).join(', ');
}

// The principal an audit or event actor names, as the API writes it.
export function actor(value) {
  if (value == null) return '—';
  if (typeof value !== 'object') return String(value);
  return data(value);
}
