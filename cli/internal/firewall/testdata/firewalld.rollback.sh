#!/bin/sh
# FLM firewall rollback
# Run as root (sudo sh <this file>).
set -u
firewall-cmd --permanent '--remove-rich-rule=rule family="ipv4" source address="192.168.1.0/24" port port="8080" protocol="tcp" accept'
firewall-cmd --permanent '--remove-rich-rule=rule family="ipv4" source address="192.168.1.0/24" port port="8081" protocol="tcp" accept'
firewall-cmd --reload
