// `mailjail config check [-c FILE]` validates the config (with drop-ins) without running anything;
// `mailjail config default` prints the embedded default config.
import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../daemon/config.js';
import { DEFAULT_CONFIG_YAML } from '../daemon/default-config.js';
import { formatDuration } from '../lib/duration.js';
import { action } from '../daemon/report-error.js';
import { loadRulePack } from '../rules/pack.js';

export function register(program: Command): void {
  const config = program.command('config').description('check or print the configuration');
  config
    .command('check')
    .description(`validate ${DEFAULT_CONFIG_PATH}, conf.d/*.yaml and the rule pack without running (exit 0 valid, 2 invalid)`)
    .option('-c, --config <file>', 'main config file', undefined)
    .option('-q, --quiet', 'print nothing when the config is valid')
    .action(action((opts: { config?: string; quiet?: boolean }) => {
      const c = loadConfig(opts.config !== undefined ? { path: opts.config } : {});
      // The rule pack is part of the config: a rules dir that does not load would stop `run`.
      const engine = loadRulePack(c.rules.dir);
      if (opts.quiet) return;
      const out = [
        `config OK: ${c.files.join(', ')}`,
        `  sources: ${c.sources.map((s) => `${s.name} (${s.type}${s.type === 'journald' ? '' : ` ${s.listen.host}:${s.listen.port}`})`).join(', ')}`,
        `  policies: ${c.policies.map((p) => `${p.name} (${p.classes.join('+')}: ${p.maxretry} in ${formatDuration(p.findtime)} → ${formatDuration(p.bantime)})`).join(', ')}`,
        `  firewall: ${c.firewall.backend}, ports ${c.firewall.ports === 'all' ? 'all' : c.firewall.ports.join(',')}`,
        `  rules: ${c.rules.dir} (${engine.files.length} files, ${engine.files.reduce((n, f) => n + f.rules.length, 0)} rules); state: ${c.state.dir}; control: ${c.control.socket}; metrics: ${c.metrics.enabled ? `${c.metrics.host}:${c.metrics.port}` : 'off'}`,
      ];
      process.stdout.write(`${out.join('\n')}\n`);
    }));
  config
    .command('default')
    .description('print the embedded default config (what runs when no config file exists)')
    .action(() => {
      process.stdout.write(DEFAULT_CONFIG_YAML);
    });
}
