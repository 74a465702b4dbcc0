// Embedding Atlas (the full viewer: Mosaic coordinator + DuckDB-WASM) with every file served from
// 127.0.0.1: the DuckDB "eh" bundle from this folder, the points as Arrow IPC (a parquet file would
// make DuckDB fetch its parquet extension from extensions.duckdb.org). Marks timings on window.__marks.
import * as duckdb from "@duckdb/duckdb-wasm";
import { Coordinator, wasmConnector } from "@uwdata/mosaic-core";
import { EmbeddingAtlas } from "embedding-atlas";

const t0 = performance.now();
const mark = (what) => { window.__marks = window.__marks || {}; window.__marks[what] = performance.now() - t0; };
async function main() {
  const base = new URL(".", location.href).href;
  const worker = new Worker(base + "duckdb-browser-eh.worker.js");
  const db = new duckdb.AsyncDuckDB(new duckdb.VoidLogger(), worker);
  await db.instantiate(base + "duckdb-eh.wasm");
  mark("duckdb");
  const coordinator = new Coordinator();
  coordinator.databaseConnector(wasmConnector({ duckdb: db }));
  const buf = new Uint8Array(await (await fetch(base + "points.arrow")).arrayBuffer());
  const con = await db.connect();
  await con.insertArrowFromIPCStream(buf, { name: "points", create: true });
  mark("loaded");
  new EmbeddingAtlas(document.getElementById("app"), {
    coordinator, data: { table: "points", id: "id", projection: { x: "x", y: "y" }, text: "text" },
  });
  mark("mounted");
}
main().catch((e) => { window.__error = String(e); console.error(e); });
