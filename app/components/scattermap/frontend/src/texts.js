// The pairs' texts for the tooltip, fetched from 127.0.0.1 only when a point is hovered: the app
// writes them as gzipped JSON shards (one array of [prompt, chosen, rejected] per `size` pairs)
// into a cache folder that Streamlit serves beside this component. Shown with textContent only.

export class Texts {
  constructor(base, size) {
    this.base = base;
    this.size = size;
    this.shards = new Map();
  }

  async pair(pair) {
    if (!this.base || typeof DecompressionStream === "undefined") return null;
    const k = Math.floor(pair / this.size);
    if (!this.shards.has(k)) this.shards.set(k, this._fetch(k));
    const shard = await this.shards.get(k);
    if (!shard) this.shards.delete(k);  // not written yet, or the app restarted: try again next time
    return shard ? shard[pair - k * this.size] || null : null;
  }

  async _fetch(k) {
    try {
      const response = await fetch(new URL(`${this.base}/${k}.json.gz`, window.location.href));
      if (!response.ok) return null;
      const text = await new Response(response.body.pipeThrough(new DecompressionStream("gzip"))).text();
      return JSON.parse(text);
    } catch (error) {
      return null;
    }
  }
}
