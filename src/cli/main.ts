#!/usr/bin/env node
// Entry point placeholder; commands are added by the cli stage.
console.log('mailjail');
