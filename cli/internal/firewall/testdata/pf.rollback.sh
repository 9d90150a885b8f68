#!/bin/sh
# FLM firewall rollback
# Run as root (sudo sh <this file>).
set -u
pfctl -a com.apple/flm -F rules
