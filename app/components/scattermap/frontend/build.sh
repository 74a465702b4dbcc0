#!/usr/bin/env bash
# Rebuild the component's committed assets (../static) from src/. Needs node >= 18 and npm; users
# and the tests never run this: the built files are in the repository.
#   bash app/components/scattermap/frontend/build.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --no-audit --no-fund
npx esbuild src/main.js --bundle --minify --format=iife --target=es2020 --legal-comments=none \
  --outfile=../static/main.js
cp src/index.html ../static/index.html
# What the assets were built from: tests/test_scattermap.py fails when src/ changed without a rebuild.
(cd src && sha256sum $(ls | sort)) | sha256sum | cut -c1-64 > ../static/source.sha256
ls -l ../static
