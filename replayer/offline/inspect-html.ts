// `ftjs inspect --html`: one self-contained page (no network: inline style, inline SVG, inline script)
// with the trace's timeline. Each task is one mark in the lane of its kind, placed at its guest time
// (or, switched by a control, at its position in task order), its width its guest-time duration; below
// it, each task's work (interrupt polls, log scale); preemptions are outlined in red. Marks carry their
// details in <title> (a hover tooltip even without script) and data- attributes (the script's richer
// tooltip). A second chart shows log bytes per second of guest time. The page scrolls sideways and
// zooms. Past MAX_MARKS tasks, marks are aggregated into buckets of consecutive tasks.

import type { InspectReport, TaskMark } from './inspect.js';

export const MAX_MARKS = 5000;
const BUCKETS = 2000;
const LANES = ['Boot', 'Request', 'Timer', 'FetchResult', 'Scheduled'];
const LANE_HEIGHT = 26;
const WORK_HEIGHT = 70;
const AXIS_HEIGHT = 22;
const LEFT = 92;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function iso(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : '-';
}

/** A task's mark, or a bucket of consecutive tasks (`count` of them) past MAX_MARKS. */
type Mark = Omit<TaskMark, 'entries'> & { count: number };

function bucketed(marks: TaskMark[]): Mark[] {
  if (marks.length <= MAX_MARKS) return marks.map((m) => ({ ...m, count: 1 }));
  const size = Math.ceil(marks.length / BUCKETS);
  const out: Mark[] = [];
  for (let i = 0; i < marks.length; i += size) {
    const group = marks.slice(i, i + size);
    const first = group[0]!;
    const last = group[group.length - 1]!;
    // A bucket sits in the lane of its most common kind.
    const kinds = new Map<string, number>();
    for (const m of group) kinds.set(m.kind, (kinds.get(m.kind) ?? 0) + 1);
    const kind = [...kinds].sort((a, b) => b[1] - a[1])[0]![0];
    out.push({
      seq: first.seq,
      endSeq: last.endSeq,
      kind,
      timeMs: first.timeMs,
      durationMs: Math.max(0, last.timeMs + last.durationMs - first.timeMs),
      work: group.reduce((s, m) => s + m.work, 0),
      bytes: group.reduce((s, m) => s + m.bytes, 0),
      outputs: group.reduce((s, m) => s + m.outputs, 0),
      preempted: group.some((m) => m.preempted),
      timed: group.some((m) => m.timed),
      label: `${group.length} tasks (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')})`,
      count: group.length,
    });
  }
  return out;
}

function table(headers: string[], rows: Array<Array<string | number>>, cls = ''): string {
  if (rows.length === 0) return '<p class="none">none</p>';
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td${typeof c === 'number' ? ' class="num"' : ''}>${esc(String(c))}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

export function renderInspectHtml(r: InspectReport): string {
  const marks = bucketed(r.marks);
  const aggregated = marks.length < r.marks.length;
  const lanes = LANES.filter((k) => marks.some((m) => m.kind === k));
  for (const m of marks) if (!lanes.includes(m.kind)) lanes.push(m.kind);
  const t0 = marks.length > 0 ? Math.min(...marks.map((m) => m.timeMs)) : 0;
  const t1 = marks.length > 0 ? Math.max(...marks.map((m) => m.timeMs + m.durationMs)) : 0;
  const span = Math.max(1, t1 - t0);
  // Guest time is the default axis when most tasks read the clock themselves; otherwise most marks
  // would pile up at the last time read, and task order shows more (both are one click away).
  const timedShare = r.marks.length > 0 ? r.marks.filter((m) => m.timed).length / r.marks.length : 0;
  const canUseTime = r.time !== null && t1 > t0;
  const useTime = canUseTime && timedShare >= 0.5;
  const width = Math.min(24000, Math.max(900, marks.length * 6));
  const maxWork = Math.max(1, ...marks.map((m) => m.work));
  const lanesHeight = lanes.length * LANE_HEIGHT;
  const height = AXIS_HEIGHT + lanesHeight + 10 + WORK_HEIGHT + 4;
  const xOf = (m: Mark, i: number) => (useTime ? ((m.timeMs - t0) / span) * width : (i / Math.max(1, marks.length)) * width);
  const wOf = (m: Mark) => (useTime ? Math.max(2, (m.durationMs / span) * width) : Math.max(1, width / Math.max(1, marks.length) - 1));
  const workH = (w: number) => (Math.log10(w + 1) / Math.log10(maxWork + 1)) * WORK_HEIGHT;

  const rects: string[] = [];
  const bars: string[] = [];
  marks.forEach((m, i) => {
    const lane = lanes.indexOf(m.kind);
    const x = xOf(m, i).toFixed(1);
    const w = wOf(m).toFixed(1);
    const title =
      m.count > 1
        ? `${m.label}, seq ${m.seq}..${m.endSeq}; work ${m.work} polls; ${fmtBytes(m.bytes)}; ${m.outputs} outputs${m.preempted ? '; preempted' : ''}`
        : `${m.kind} at seq ${m.seq}..${m.endSeq}: ${m.label}\nguest time ${iso(m.timeMs)}${m.timed ? `, duration ${m.durationMs} ms` : ' (did not read the clock: the last time read before it)'}\nwork ${m.work} polls; log ${fmtBytes(m.bytes)}; ${m.outputs} outputs and console lines${m.preempted ? '\nPREEMPTED (CPU budget overrun)' : ''}`;
    const data = `data-seq="${m.seq}" data-end="${m.endSeq}" data-kind="${esc(m.kind)}" data-t="${m.timeMs - t0}" data-d="${m.durationMs}" data-i="${i}" data-work="${m.work}" data-bytes="${m.bytes}" data-out="${m.outputs}" data-pre="${m.preempted ? 1 : 0}" data-n="${m.count}"`;
    rects.push(
      `<rect class="${m.count > 1 ? 'bucket' : 'task'} k-${esc(m.kind)}${m.preempted ? ' preempted' : ''}${m.timed ? '' : ' untimed'}" ${data} x="${x}" y="${AXIS_HEIGHT + lane * LANE_HEIGHT + 4}" width="${w}" height="${LANE_HEIGHT - 8}"><title>${esc(title)}</title></rect>`,
    );
    const h = workH(m.work);
    bars.push(
      `<rect class="work k-${esc(m.kind)}" data-i="${i}" data-t="${m.timeMs - t0}" data-d="${m.durationMs}" x="${x}" y="${(AXIS_HEIGHT + lanesHeight + 10 + WORK_HEIGHT - h).toFixed(1)}" width="${w}" height="${h.toFixed(1)}"><title>seq ${m.seq}: ${m.work} polls</title></rect>`,
    );
  });
  const laneLabels = lanes.map((k, i) => `<text class="lane-label" x="4" y="${AXIS_HEIGHT + i * LANE_HEIGHT + LANE_HEIGHT / 2 + 4}">${esc(k)}</text>`).join('');
  const laneLines = lanes.map((_, i) => `<line class="lane-line" x1="0" x2="${width}" y1="${AXIS_HEIGHT + (i + 1) * LANE_HEIGHT}" y2="${AXIS_HEIGHT + (i + 1) * LANE_HEIGHT}"/>`).join('');

  // Bytes per second of guest time.
  const bps = r.bytesPerSecond;
  const maxBps = Math.max(1, ...bps.map((b) => b.bytes));
  const bpsWidth = Math.min(24000, Math.max(900, bps.length * 8));
  const bpsFirst = bps[0]?.second ?? 0;
  const bpsSpan = Math.max(1, (bps[bps.length - 1]?.second ?? 0) - bpsFirst + 1);
  const bpsBars = bps
    .map((b) => {
      const h = (b.bytes / maxBps) * 100;
      const x = ((b.second - bpsFirst) / bpsSpan) * bpsWidth;
      return `<rect class="bps" x="${x.toFixed(1)}" y="${(110 - h).toFixed(1)}" width="${Math.max(1, bpsWidth / bpsSpan - 1).toFixed(1)}" height="${h.toFixed(1)}"><title>${esc(iso(b.second * 1000))}: ${fmtBytes(b.bytes)}/s</title></rect>`;
    })
    .join('');

  const kinds = Object.entries(r.entries.byKind).sort((a, b) => b[1].count - a[1].count);
  const summaryRows: Array<[string, string]> = [
    ['trace', `${r.trace}${r.segments.length > 1 ? ` (${r.segments.length} segments)` : ''}, ${fmtBytes(r.fileBytes)}`],
    ['guest', `${r.header.guest} (${r.header.guestHash.slice(0, 12)})`],
    ['recorded by', `${r.header.node ?? 'unknown'} at ${r.header.createdAt}`],
    ['engine', r.header.engine],
    ['seqs', `${r.seqs.first}..${r.seqs.last} (${r.entries.total} entries)`],
    [
      'guest time',
      r.time ? `${iso(r.time.firstMs)} .. ${iso(r.time.lastMs)} (${(r.time.spanMs / 1000).toFixed(1)} s, ${r.time.clockReadings} clock readings)` : 'unknown: the guest never read the clock',
    ],
    [
      'tasks',
      `${r.tasks.total} (${Object.entries(r.tasks.byKind)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')})`,
    ],
    [
      'outputs',
      `${r.outputs.total} outputs and console lines${
        r.outputs.recorded
          ? `; responses by status: ${
              Object.entries(r.outputs.recorded.responsesByStatus)
                .map(([st, n]) => `${st}: ${n}`)
                .join(', ') || 'none'
            }`
          : ''
      }`,
    ],
    ['preemptions', String(r.preemptions.length)],
    ['state hashes', String(r.stateHashes)],
  ];

  const style = `
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 20px;color:#1d232a;background:#fff}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:22px 0 6px}
table{border-collapse:collapse;margin:4px 0}th,td{padding:2px 10px 2px 0;text-align:left;vertical-align:top}th{border-bottom:1px solid #ccd}
td.num{text-align:right;font-variant-numeric:tabular-nums}.kv th{border:none;color:#556}
.scroll{overflow-x:auto;overflow-y:hidden;border:1px solid #dde;background:#fbfbfd;position:relative;margin-left:${LEFT}px}
.frame{position:relative}.lanes{position:absolute;left:0;top:0;width:${LEFT}px}
svg text{font-size:11px;fill:#445}.lane-line{stroke:#e3e3ea}.axis line{stroke:#aab}
rect.task,rect.bucket{fill-opacity:.8;cursor:pointer}rect.task:hover,rect.bucket:hover{fill-opacity:1;stroke:#000}
.k-Request{fill:#3b82c4}.k-Timer{fill:#d9902f}.k-FetchResult{fill:#4aa36b}.k-Boot{fill:#8a5cc2}.k-Scheduled{fill:#c24f7a}
rect.untimed{fill-opacity:.45}rect.work{fill-opacity:.5}rect.preempted{stroke:#d11;stroke-width:2}rect.bps{fill:#7a8799}
#tooltip{position:fixed;pointer-events:none;background:#1d232a;color:#fff;padding:6px 8px;border-radius:4px;white-space:pre;font-size:12px;z-index:2;max-width:60ch}
.controls{margin:6px 0}.controls button{font:inherit;padding:1px 10px}.note{color:#667}.none{color:#889}`;

  const script = `
(function () {
  var svg = document.getElementById('timeline');
  var tip = document.getElementById('tooltip');
  var baseWidth = ${width}, zoom = 1, useTime = ${useTime ? 'true' : 'false'}, span = ${span}, n = ${marks.length}, tasks = ${r.marks.length};
  function layout() {
    var w = baseWidth * zoom;
    svg.setAttribute('width', w);
    var rects = svg.querySelectorAll('rect[data-i]');
    for (var k = 0; k < rects.length; k++) {
      var r = rects[k], i = +r.getAttribute('data-i'), t = +r.getAttribute('data-t'), d = +r.getAttribute('data-d');
      var x = useTime ? t / span * w : i / Math.max(1, n) * w;
      var width = useTime ? Math.max(2, d / span * w) : Math.max(1, w / Math.max(1, n) - 1);
      r.setAttribute('x', x.toFixed(1));
      r.setAttribute('width', width.toFixed(1));
    }
    var lines = svg.querySelectorAll('.lane-line');
    for (var j = 0; j < lines.length; j++) lines[j].setAttribute('x2', w);
    var ticks = document.getElementById('ticks');
    ticks.textContent = '';
    var count = Math.max(2, Math.floor(w / 140));
    for (var q = 0; q <= count; q++) {
      var x = q / count * w;
      var label = useTime ? '+' + (q / count * span / 1000).toFixed(span < 10000 ? 2 : 0) + ' s' : 'task ' + Math.round(q / count * tasks);
      var text = document.createElementNS(svg.namespaceURI, 'text');
      text.setAttribute('x', Math.min(x + 2, w - 60));
      text.setAttribute('y', 14);
      text.textContent = label;
      ticks.appendChild(text);
    }
  }
  document.getElementById('zoom-in').onclick = function () { zoom = Math.min(64, zoom * 2); layout(); };
  document.getElementById('zoom-out').onclick = function () { zoom = Math.max(1 / 8, zoom / 2); layout(); };
  var radios = document.querySelectorAll('input[name=axis]');
  for (var a = 0; a < radios.length; a++) radios[a].onchange = function (e) { useTime = e.target.value === 'time'; layout(); };
  svg.addEventListener('mousemove', function (e) {
    var r = e.target;
    if (!r.getAttribute || !r.getAttribute('data-seq')) { tip.hidden = true; return; }
    var title = r.querySelector('title');
    tip.textContent = title ? title.textContent : '';
    tip.hidden = false;
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 380) + 'px';
    tip.style.top = (e.clientY + 14) + 'px';
  });
  svg.addEventListener('mouseleave', function () { tip.hidden = true; });
  layout();
})();`;

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ftjs trace ${esc(r.trace)}</title>
<style>${style}</style>
</head>
<body>
<h1>ftjs trace: ${esc(r.header.guest)}</h1>
<section id="summary">
${table([], summaryRows, 'kv').replace('<thead><tr></tr></thead>', '')}
</section>
<section id="timeline-section">
<h2>Timeline of tasks</h2>
<p class="note">One mark per task${aggregated ? ` (here ${marks.length} marks: ${r.marks.length} tasks in buckets of consecutive tasks)` : ''}, in the lane of its kind, at its guest time, as wide as the guest time it saw pass; below, each task's work in interrupt polls (log scale). Red outline: preempted. Paler: a task that did not read the clock. Hover a mark for its details; scroll sideways; zoom with the buttons. A task's time is the first clock value it read, else the last one read before it: the trace has no other time${useTime ? '' : canUseTime ? `; only ${Math.round(timedShare * 100)}% of the tasks read the clock, so task order is shown first` : '; the guest time does not vary over this trace, so tasks are shown in order'}.</p>
<div class="controls"><button id="zoom-out" type="button">−</button> <button id="zoom-in" type="button">+</button>
<label><input type="radio" name="axis" value="time"${useTime ? ' checked' : ''}${canUseTime ? '' : ' disabled'}> guest time</label>
<label><input type="radio" name="axis" value="order"${useTime ? '' : ' checked'}> task order</label></div>
<div class="frame">
<svg class="lanes" width="${LEFT}" height="${height}">${laneLabels}<text class="lane-label" x="4" y="${AXIS_HEIGHT + lanesHeight + 10 + WORK_HEIGHT / 2}">work</text></svg>
<div class="scroll">
<svg id="timeline" width="${width}" height="${height}" data-tasks="${r.marks.length}" data-marks="${marks.length}">
<g id="ticks" class="axis"></g>
${laneLines}
<g id="marks">${rects.join('\n')}</g>
<g id="work">${bars.join('\n')}</g>
</svg>
</div>
</div>
<div id="tooltip" hidden></div>
</section>
<section id="bytes-section">
<h2>Log bytes per second of guest time</h2>
${bps.length > 0 && r.time ? `<div class="scroll" style="margin-left:0"><svg id="bytes-per-second" width="${bpsWidth}" height="112">${bpsBars}</svg></div><p class="note">peak ${fmtBytes(maxBps)}/s over ${bps.length} seconds with tasks</p>` : '<p class="none">no guest time in this trace</p>'}
</section>
<section id="tables">
<h2>Entries by kind</h2>
${table(
  ['kind', 'entries', 'payload bytes'],
  kinds.map(([k, v]) => [k, v.count, v.payloadBytes]),
)}
<h2>Requests by route</h2>
${table(
  ['route', 'requests'],
  r.requests.byRoute.slice(0, 100).map((x) => [x.route, x.count]),
)}
<h2>Largest tasks (work)</h2>
${table(
  ['seq', 'kind', 'work (polls)', 'log bytes', 'outputs', 'event'],
  r.largestTasks.byWork.map((m) => [m.seq, m.kind, m.work, m.bytes, m.outputs, m.label + (m.preempted ? ' [preempted]' : '')]),
)}
<h2>Largest tasks (log bytes)</h2>
${table(
  ['seq', 'kind', 'log bytes', 'work (polls)', 'event'],
  r.largestTasks.byBytes.map((m) => [m.seq, m.kind, m.bytes, m.work, m.label]),
)}
<h2>Preemptions</h2>
${table(
  ['seq', 'task', 'event'],
  r.preemptions.map((p) => [p.seq, p.taskSeq, p.label]),
)}
<h2>Epochs</h2>
${table(
  ['seq', 'epoch', 'node'],
  r.epochs.map((e) => [e.seq, e.epoch, e.nodeId]),
)}
</section>
<script>${script}</script>
</body>
</html>
`;
}
