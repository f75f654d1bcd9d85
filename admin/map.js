// A tiny SVG map: GeoJSON polygons in Web Mercator, pan (drag, arrow keys),
// zoom (wheel, +/- keys, buttons), click to pick a point. No tiles needed; an
// optional tile URL template ({z}/{x}/{y}) draws a background when configured.

const SVG = 'http://www.w3.org/2000/svg';
// Path coordinates are world coordinates (0..1) times this, so that SVG's
// float32 arithmetic keeps sub-metre precision at city scale.
const W = 1e6;
const MAX_LAT = 85.05112878;
const MIN_SCALE = 64;           // pixels per world width
const MAX_SCALE = 256 * 2 ** 22; // about 4 cm per pixel

/** Longitude/latitude to world coordinates in [0,1] (Web Mercator, y down). */
export function project(lon, lat) {
  const la = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI / 180;
  return [(lon + 180) / 360, (1 - Math.log(Math.tan(la) + 1 / Math.cos(la)) / Math.PI) / 2];
}

/** World coordinates back to [lon, lat]. */
export function unproject(x, y) {
  const lon = x * 360 - 180;
  const lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180 / Math.PI;
  return [lon, lat];
}

function el(name, attrs = {}) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** The polygons of a GeoJSON Feature, FeatureCollection or geometry, as lists of rings. */
export function polygonsOf(g) {
  if (!g) return [];
  switch (g.type) {
    case 'Feature': return polygonsOf(g.geometry);
    case 'FeatureCollection': return (g.features || []).flatMap(polygonsOf);
    case 'GeometryCollection': return (g.geometries || []).flatMap(polygonsOf);
    case 'Polygon': return [g.coordinates || []];
    case 'MultiPolygon': return g.coordinates || [];
    default: return [];
  }
}

/** An SVG path (world units times W) and the world bounding box of some polygons. */
function pathOf(polygons) {
  let d = '';
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (const poly of polygons) {
    for (const ring of poly) {
      if (!Array.isArray(ring) || ring.length < 2) continue;
      ring.forEach((pos, i) => {
        if (!Array.isArray(pos) || !Number.isFinite(pos[0]) || !Number.isFinite(pos[1])) return;
        const [x, y] = project(pos[0], pos[1]);
        box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y);
        box[2] = Math.max(box[2], x); box[3] = Math.max(box[3], y);
        d += `${i ? 'L' : 'M'}${(x * W).toFixed(2)} ${(y * W).toFixed(2)}`;
      });
      d += 'Z';
    }
  }
  return { d, box: Number.isFinite(box[0]) ? box : null };
}

export class MapView {
  /**
   * @param {HTMLElement} container the element to draw in (focusable)
   * @param {{tileUrl?: string, onPick?: (lon:number, lat:number) => void}} opts
   */
  constructor(container, opts = {}) {
    this.container = container;
    this.tileUrl = opts.tileUrl || null;
    this.onPick = opts.onPick || null;
    this.cx = 0.5; this.cy = 0.5; this.scale = 256;
    this.layers = [];
    this.marker = null;
    this.fitBox = null;
    this.svg = el('svg', { class: 'map-svg', 'aria-hidden': 'true', focusable: 'false' });
    this.gTiles = el('g', { class: 'tiles' });
    this.gLayers = el('g', { class: 'layers' });
    this.gMarker = el('g', { class: 'marker' });
    this.cross = el('g', { class: 'crosshair' });
    this.cross.append(el('path', { d: 'M-9 0H-3M3 0H9M0 -9V-3M0 3V9' }));
    this.svg.append(this.gTiles, this.gLayers, this.gMarker, this.cross);
    container.append(this.svg);
    this.readout = document.createElement('p');
    this.readout.className = 'map-readout';
    container.append(this.readout);
    this.bindEvents();
    this.frame = 0;
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(() => {
        if (this.fitBox && !this.userMoved) this.fit(this.fitBox); else this.render();
      }).observe(container);
    }
  }

  get width() { return this.container.clientWidth || 300; }
  get height() { return this.container.clientHeight || 300; }

  /** Replaces the drawn layers: [{geojson, className, title}], drawn in order (last on top). */
  setLayers(layers) {
    this.gLayers.replaceChildren();
    this.layers = [];
    for (const l of layers) {
      const { d, box } = pathOf(polygonsOf(l.geojson));
      if (!box) continue;
      const p = el('path', { d, class: `area ${l.className || ''}`, 'fill-rule': 'evenodd', 'vector-effect': 'non-scaling-stroke' });
      if (l.title) { const t = el('title'); t.textContent = l.title; p.append(t); }
      this.gLayers.append(p);
      this.layers.push({ ...l, box });
    }
    this.render();
  }

  /** The world bounding box of the layers with `focus` set (or of all). */
  layersBox(onlyFocus = true) {
    const ls = this.layers.filter((l) => !onlyFocus || l.focus);
    const use = ls.length ? ls : this.layers;
    if (!use.length) return null;
    return use.reduce((b, l) => [Math.min(b[0], l.box[0]), Math.min(b[1], l.box[1]), Math.max(b[2], l.box[2]), Math.max(b[3], l.box[3])],
      [Infinity, Infinity, -Infinity, -Infinity]);
  }

  /** Shows a world box (from layersBox) with some margin. */
  fit(box = this.layersBox()) {
    if (!box) return;
    this.fitBox = box;
    this.userMoved = false;
    const pad = 24;
    const bw = Math.max(box[2] - box[0], 1e-9), bh = Math.max(box[3] - box[1], 1e-9);
    this.scale = this.clampScale(Math.min((this.width - 2 * pad) / bw, (this.height - 2 * pad) / bh));
    this.cx = (box[0] + box[2]) / 2; this.cy = (box[1] + box[3]) / 2;
    this.render();
  }

  /** Centres the map on a point, zooming in to at least `minScale`. */
  centerOn(lon, lat, minScale = 256 * 2 ** 12) {
    [this.cx, this.cy] = project(lon, lat);
    this.scale = this.clampScale(Math.max(this.scale, minScale));
    this.userMoved = true;
    this.render();
  }

  /** Puts the marker at a point (null removes it). */
  setMarker(lon, lat) {
    this.marker = lon === null || lon === undefined ? null : project(lon, lat);
    this.render();
  }

  clampScale(s) { return Math.max(MIN_SCALE, Math.min(MAX_SCALE, s)); }

  /** Zooms by `factor` keeping the screen point (px, py) (default: the centre) in place. */
  zoomBy(factor, px = this.width / 2, py = this.height / 2) {
    const [wx, wy] = this.screenToWorld(px, py);
    this.scale = this.clampScale(this.scale * factor);
    this.cx = wx - (px - this.width / 2) / this.scale;
    this.cy = wy - (py - this.height / 2) / this.scale;
    this.userMoved = true;
    this.render();
  }

  /** Pans by a screen distance in pixels. */
  panBy(dx, dy) {
    this.cx -= dx / this.scale;
    this.cy = Math.max(0, Math.min(1, this.cy - dy / this.scale));
    this.userMoved = true;
    this.render();
  }

  screenToWorld(px, py) {
    return [this.cx + (px - this.width / 2) / this.scale, this.cy + (py - this.height / 2) / this.scale];
  }

  worldToScreen(x, y) {
    return [(x - this.cx) * this.scale + this.width / 2, (y - this.cy) * this.scale + this.height / 2];
  }

  /** The [lon, lat] under a screen point. */
  screenToLonLat(px, py) {
    const [x, y] = this.screenToWorld(px, py);
    const [lon, lat] = unproject(x, y);
    return [((lon + 540) % 360) - 180, lat];
  }

  /** The [lon, lat] at the centre of the map. */
  center() { return this.screenToLonLat(this.width / 2, this.height / 2); }

  render() {
    if (this.frame) return;
    const run = () => { this.frame = 0; this.draw(); };
    this.frame = typeof requestAnimationFrame === 'function' ? requestAnimationFrame(run) : (setTimeout(run, 0), 1);
  }

  draw() {
    const w = this.width, h = this.height;
    this.svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const k = this.scale / W;
    this.gLayers.setAttribute('transform', `matrix(${k} 0 0 ${k} ${w / 2 - this.cx * this.scale} ${h / 2 - this.cy * this.scale})`);
    this.cross.setAttribute('transform', `translate(${w / 2} ${h / 2})`);
    this.gMarker.replaceChildren();
    if (this.marker) {
      const [mx, my] = this.worldToScreen(this.marker[0], this.marker[1]);
      this.gMarker.append(el('circle', { cx: mx, cy: my, r: 7 }), el('circle', { cx: mx, cy: my, r: 2, class: 'dot' }));
    }
    this.drawTiles(w, h);
    const [lon, lat] = this.center();
    const mPerPx = 40075016.686 * Math.cos(lat * Math.PI / 180) / this.scale;
    const scaleText = mPerPx * 100 >= 1000 ? `${(mPerPx * 100 / 1000).toPrecision(2)} km` : `${Math.round(mPerPx * 100)} m`;
    this.readout.textContent = `${lat.toFixed(4)}, ${lon.toFixed(4)} · 100 px ≈ ${scaleText}`;
  }

  drawTiles(w, h) {
    if (!this.tileUrl) return;
    this.gTiles.replaceChildren();
    const z = Math.max(0, Math.min(19, Math.round(Math.log2(this.scale / 256))));
    const n = 2 ** z, size = this.scale / n;
    const [x0, y0] = this.screenToWorld(0, 0), [x1, y1] = this.screenToWorld(w, h);
    const tx0 = Math.floor(x0 * n), tx1 = Math.floor(x1 * n);
    const ty0 = Math.max(0, Math.floor(y0 * n)), ty1 = Math.min(n - 1, Math.floor(y1 * n));
    if ((tx1 - tx0 + 1) * (ty1 - ty0 + 1) > 200) return;
    for (let tx = tx0; tx <= tx1; tx++) {
      for (let ty = ty0; ty <= ty1; ty++) {
        const wrapped = ((tx % n) + n) % n;
        const href = this.tileUrl.replace('{z}', z).replace('{x}', wrapped).replace('{y}', ty);
        const [sx, sy] = this.worldToScreen(tx / n, ty / n);
        this.gTiles.append(el('image', { href, x: sx, y: sy, width: size + 0.5, height: size + 0.5 }));
      }
    }
  }

  pick(px, py) {
    const [lon, lat] = this.screenToLonLat(px, py);
    if (this.onPick) this.onPick(lon, lat);
  }

  bindEvents() {
    const c = this.container;
    let down = null;
    c.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      down = { x: e.clientX, y: e.clientY, lastX: e.clientX, lastY: e.clientY, moved: false, id: e.pointerId };
      c.setPointerCapture?.(e.pointerId);
    });
    c.addEventListener('pointermove', (e) => {
      if (!down || e.pointerId !== down.id) return;
      if (!down.moved && Math.hypot(e.clientX - down.x, e.clientY - down.y) > 4) {
        down.moved = true;
        c.classList.add('dragging');
      }
      if (down.moved) {
        this.panBy(e.clientX - down.lastX, e.clientY - down.lastY);
        down.lastX = e.clientX; down.lastY = e.clientY;
      }
    });
    const end = (e, cancelled) => {
      if (!down || e.pointerId !== down.id) return;
      c.classList.remove('dragging');
      if (!down.moved && !cancelled) {
        const r = c.getBoundingClientRect();
        this.pick(e.clientX - r.left, e.clientY - r.top);
      }
      down = null;
    };
    c.addEventListener('pointerup', (e) => end(e, false));
    c.addEventListener('pointercancel', (e) => end(e, true));
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    c.addEventListener('keydown', (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const step = Math.min(this.width, this.height) / 6;
      const keys = {
        ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
        '+': () => this.zoomBy(2), '=': () => this.zoomBy(2), '-': () => this.zoomBy(0.5), _: () => this.zoomBy(0.5),
        '0': () => this.fit(), Enter: () => this.pick(this.width / 2, this.height / 2), ' ': () => this.pick(this.width / 2, this.height / 2),
      };
      const f = keys[e.key];
      if (f) { e.preventDefault(); f(); }
    });
  }
}
