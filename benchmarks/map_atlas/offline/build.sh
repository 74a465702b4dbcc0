#!/usr/bin/env bash
# Build the Embedding Atlas offline trial into www/ (git-ignored; ~40 MB, most of it duckdb-eh.wasm).
# Needs node and the npm registry; the product never runs this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm install --no-audit --no-fund
mkdir -p www
npx esbuild main.js --bundle --format=esm --minify --outfile=www/main.js
cp index.html www/
cp node_modules/embedding-atlas/dist/*.worker.js www/
cp node_modules/@duckdb/duckdb-wasm/dist/duckdb-browser-eh.worker.js node_modules/@duckdb/duckdb-wasm/dist/duckdb-eh.wasm www/
du -sh www/*
