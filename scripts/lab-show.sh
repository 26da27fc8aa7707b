#!/usr/bin/env bash
# make lab: placeholder until kha lab lands.
echo "kha lab: not implemented yet"
exit 1
