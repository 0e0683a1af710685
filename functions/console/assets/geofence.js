// The milestone's geofence and where the photo was taken, as a small SVG
// built with DOM APIs: a circle of the fence's radius around its centre, a
// dot at the photo's position. No map tiles: the page works offline. The
// drawing is in metres on a flat local approximation (fine at fence scale);
// the distance written beside it is the server's (haversine).

import { h, s } from './dom.js';
import { metres } from './format.js';

const METRES_PER_DEGREE_LAT = 110574;
const METRES_PER_DEGREE_LNG_AT_EQUATOR = 111320;

let drawn = 0;

// `fence` is the milestone's {lat, lng, radius_m} (or null); `evidence` the
// proof's {gps_lat, gps_lng, distance_m} (or null).
export function geofence(fence, evidence) {
  if (!fence) return h('p', { class: 'hint' }, 'This milestone has no geofence.');
  const has = evidence && evidence.gps_lat != null && evidence.gps_lng != null;
  const x = has
    ? (evidence.gps_lng - fence.lng) * METRES_PER_DEGREE_LNG_AT_EQUATOR * Math.cos((fence.lat * Math.PI) / 180)
    : 0;
  const y = has ? (evidence.gps_lat - fence.lat) * METRES_PER_DEGREE_LAT : 0;
  const away = Math.hypot(x, y);
  const extent = Math.max(fence.radius_m, away) * 1.3;
  const inside = has && (evidence.distance_m ?? away) <= fence.radius_m;
  const id = `geofence-${++drawn}`;
  const summary = has
    ? `Geofence of radius ${metres(fence.radius_m)}; the photo was taken ${metres(evidence.distance_m ?? away)} from its centre, ${inside ? 'inside' : 'outside'} it.`
    : `Geofence of radius ${metres(fence.radius_m)}; the photo carries no position.`;
  const dot = extent * 0.06;
  return h('figure', { class: 'geofence' },
    s('svg', {
      viewBox: `${-extent} ${-extent} ${2 * extent} ${2 * extent}`,
      role: 'img',
      'aria-labelledby': id,
      width: 160,
      height: 160,
    },
    s('title', { id }, summary),
    s('circle', { class: 'fence', cx: 0, cy: 0, r: fence.radius_m, 'vector-effect': 'non-scaling-stroke' }),
    s('path', {
      class: 'centre',
      d: `M ${-dot} 0 H ${dot} M 0 ${-dot} V ${dot}`,
      'vector-effect': 'non-scaling-stroke',
    }),
    has && s('line', { class: 'ray', x1: 0, y1: 0, x2: x, y2: -y, 'vector-effect': 'non-scaling-stroke' }),
    has && s('circle', { class: inside ? 'photo inside' : 'photo outside', cx: x, cy: -y, r: dot }),
    s('text', { class: 'north', x: 0, y: -extent * 0.86, 'font-size': extent * 0.13, 'text-anchor': 'middle' }, 'N')),
    h('figcaption', {}, summary));
}
