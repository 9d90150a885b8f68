#!/bin/sh
# FLM firewall rollback
# Run as root (sudo sh <this file>).
set -u
ufw delete allow proto tcp from fd00:1::/64 to any port 8080
ufw delete allow proto tcp from fd00:1::/64 to any port 8081
