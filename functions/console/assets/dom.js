// Building the page with DOM APIs only: text goes in as text (never as HTML),
// handlers are listeners (never on* attributes), and no style attribute is
// ever set, so the page lives under a CSP without 'unsafe-inline'.

const SVG = 'http://www.w3.org/2000/svg';

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (name === 'style' || name.startsWith('on')) {
      throw new Error(`dom: ${name} would need 'unsafe-inline'`);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// h('p', {class: 'x'}, 'text', h('b', {}, 'bold'))
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG, tag), attrs, children);

export function clear(element) {
  element.replaceChildren();
  return element;
}

// A message in a live region: polite for news, assertive for errors.
export function say(region, text, kind = 'info') {
  region.className = `notice ${kind}`;
  region.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  region.textContent = text;
}

export const notice = () => h('p', { class: 'notice', role: 'status' });

// A definition list from [term, description] pairs (descriptions may be nodes).
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([term, value]) => [
    h('dt', {}, term),
    h('dd', {}, value ?? '—'),
  ]));
}

// A table with a caption; rows are arrays of cells (text or nodes).
export function table(caption, headings, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

export const row = (...cells) => h('tr', {}, cells.map((c) => h('td', {}, c ?? '—')));

export const link = (href, text) => h('a', { href }, text);

// A button that runs `action` once at a time, disabled while it runs.
export function button(label, action, attrs = {}) {
  const element = h('button', { type: 'button', ...attrs }, label);
  element.addEventListener('click', async () => {
    element.disabled = true;
    try {
      await action(element);
    } finally {
      if (element.isConnected && !element.dataset.done) element.disabled = false;
    }
  });
  return element;
}

const PAGES_PER_CLICK = 5;

// A list that follows `next_cursor`: `load(cursor)` answers the API's
// {items, next_cursor}; `render(item)` makes the node appended to `list`.
// Answers the controls (a status line and a "More" button) to put after
// the list, and a promise of the first page.
export function paged(list, load, render, { empty = 'Nothing here.', label = 'More' } = {}) {
  const status = notice();
  let cursor = null;
  let shown = 0;
  const more = button(label, () => next());
  more.hidden = true;
  // A filtered page may come back short, even empty, with a cursor: read
  // on, a few pages at most per click.
  async function next() {
    try {
      let fresh = 0;
      for (let pages = 0; pages < PAGES_PER_CLICK; pages += 1) {
        const page = await load(cursor);
        for (const item of page.items ?? []) {
          list.append(render(item));
          fresh += 1;
        }
        cursor = page.next_cursor ?? null;
        if (fresh || !cursor) break;
      }
      shown += fresh;
      more.hidden = !cursor;
      if (shown) status.textContent = '';
      else say(status, cursor ? `${empty} (so far: "${label}" reads further)` : empty);
    } catch (error) {
      say(status, error.message, 'error');
    }
  }
  // `added` tells the list an item came from elsewhere (no "empty" then).
  const added = () => {
    shown += 1;
    status.textContent = '';
  };
  return { controls: h('div', { class: 'paging' }, status, more), first: next(), added };
}
