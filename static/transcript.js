// The transcript view: one row per segment, partial text replaced in place, translations underneath.
// Rows of earlier connections are kept across reconnects (their times are offset).

function clock(seconds) {
  const s = Math.max(0, seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${(s % 60).toFixed(1).padStart(4, '0')}`;
}

function stamp(seconds, sep) {
  const ms = Math.round(Math.max(0, seconds) * 1000);
  const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
}

export class Transcript {
  constructor(list) {
    this.list = list;
    this.rows = new Map();  // key "connection:segment" → {el, start, end, text, final, translations}
    this.connection = 0;
    this.offset = 0;  // seconds of earlier connections
    this.lastEnd = 0;
    this.typedCount = 0;
  }

  newConnection() {
    this.connection += 1;
    this.offset = this.lastEnd;
  }

  row(key, start) {
    let row = this.rows.get(key);
    if (!row) {
      const el = document.createElement('li');
      el.className = 'segment';
      el.innerHTML = '<time></time><span class="stable"></span> <span class="tentative"></span><div class="translations"></div>';
      this.list.appendChild(el);
      row = { el, start, end: start, text: '', final: false, translations: new Map() };
      this.rows.set(key, row);
    }
    return row;
  }

  transcript(msg) {
    const row = this.row(`${this.connection}:${msg.segment}`, this.offset + msg.start);
    if (row.final) return;
    row.end = this.offset + msg.end;
    this.lastEnd = Math.max(this.lastEnd, row.end);
    row.text = msg.text;
    row.final = msg.final;
    const stable = msg.final ? msg.text : msg.stable;
    row.el.querySelector('time').textContent = clock(row.start);
    row.el.querySelector('.stable').textContent = stable;
    row.el.querySelector('.tentative').textContent = msg.final ? '' : msg.text.slice(stable.length).trim();
    row.el.classList.toggle('final', msg.final);
    row.el.dataset.segment = msg.segment;
  }

  translation(msg) {
    const row = this.row(`${this.connection}:${msg.segment}`, this.lastEnd);
    this.addTranslation(row, msg.target, msg.text);
  }

  addTranslation(row, target, text) {
    row.translations.set(target, text);
    const div = document.createElement('div');
    div.className = 'translation';
    div.lang = target;
    div.dataset.target = target;
    div.innerHTML = '<b></b><span></span>';
    div.querySelector('b').textContent = target;
    div.querySelector('span').textContent = text;
    row.el.querySelector('.translations').appendChild(div);
  }

  typed(text, language, translations) {
    this.typedCount += 1;
    const row = this.row(`typed:${this.typedCount}`, this.lastEnd);
    this.transcriptTyped(row, text);
    for (const [target, value] of Object.entries(translations)) this.addTranslation(row, target, value);
  }

  transcriptTyped(row, text) {
    row.text = text;
    row.final = true;
    row.el.classList.add('final', 'typed');
    row.el.querySelector('time').textContent = 'typed';
    row.el.querySelector('.stable').textContent = text;
  }

  finals() { return [...this.rows.values()].filter((r) => r.final && r.text); }

  toText() {
    return this.finals().map((r) => [`[${clock(r.start)}] ${r.text}`,
      ...[...r.translations].map(([t, v]) => `    ${t}: ${v}`)].join('\n')).join('\n') + '\n';
  }

  toSubtitles(kind) {
    const sep = kind === 'srt' ? ',' : '.';
    const cues = this.finals().map((r, i) => [
      ...(kind === 'srt' ? [String(i + 1)] : []),
      `${stamp(r.start, sep)} --> ${stamp(r.end, sep)}`,
      r.text, ...[...r.translations].map(([t, v]) => `[${t}] ${v}`),
    ].join('\n'));
    return (kind === 'vtt' ? 'WEBVTT\n\n' : '') + cues.join('\n\n') + '\n';
  }
}
