#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the dashboard test (tests/test_dashboard.py), from
# Debian's packages: /usr/bin/chromium and /usr/bin/chromedriver. Does nothing when both are
# there; otherwise installs them with apt-get (as root, which CI and the dev machines are).
# Exits non-zero when they could not be installed; the test then skips, naming the reason.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "setup-browser: chromium/chromedriver missing and cannot apt-get install them (not root, or no apt-get)" >&2
  exit 1
fi
# several installs may run at once on a shared machine: wait for dpkg's lock instead of failing
apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
export DEBIAN_FRONTEND=noninteractive
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core
test -x /usr/bin/chromium && test -x /usr/bin/chromedriver
