// The README's text: every variable worker/config.ts reads is in a table of variables with its
// default, and every link to a section (the table of contents) leads to a heading.
import fs from 'node:fs';
import path from 'node:path';
import { environmentVariables } from '../../worker/config';

const README = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');

/**
 * Rows of the README's variable tables (the Environment variables section, and the RunPod door's
 * Variables it points to): every name in the first cell → the second cell.
 */
function variableRows(): Map<string, string> {
  const rows = new Map<string, string>();
  let h2 = '';
  let h3 = '';
  for (const line of README.split('\n')) {
    if (line.startsWith('## ')) [h2, h3] = [line, ''];
    if (line.startsWith('### ')) h3 = line;
    const inTables = h2 === '## Environment variables' || (h2.startsWith('## The RunPod door') && h3 === '### Variables');
    if (!inTables || !line.startsWith('| `')) continue;
    const [, first = '', second = ''] = line.split('|');
    for (const match of first.matchAll(/`([A-Z][A-Z0-9_<>]+)`/g)) rows.set(match[1]!, second.trim());
  }
  return rows;
}

test('every variable of worker/config.ts has a row with its default', () => {
  const rows = variableRows();
  const variables = environmentVariables();
  expect(variables.length).toBeGreaterThan(100);
  const problems: string[] = [];
  for (const { name, default: value } of [...variables, { name: 'VAST_TCP_PORT_<WORKER_PORT>', default: undefined }]) {
    const cell = rows.get(name);
    if (cell === undefined) problems.push(`${name}: no row`);
    else if (cell === '') problems.push(`${name}: no default given`);
    else if (value !== undefined && !cell.includes(`\`${String(value)}\``)) {
      problems.push(`${name}: default ${JSON.stringify(value)}, the README says ${cell}`);
    }
  }
  expect(problems).toEqual([]);
});

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

test('every #link leads to a heading, and the table of contents names every top-level section', () => {
  const headings = README.split('\n')
    .filter((line) => /^#{1,4} /.test(line))
    .map((line) => line.replace(/^#+ /, ''));
  const anchors = new Set(headings.map(slug));
  const links = [...README.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
  expect(links.length).toBeGreaterThan(20);
  expect(links.filter((link) => !anchors.has(link))).toEqual([]);
  const contents = README.slice(README.indexOf('## Contents'), README.indexOf('## Quick start'));
  const sections = README.split('\n')
    .filter((line) => line.startsWith('## ') && line !== '## Contents')
    .map((line) => slug(line.slice(3)));
  expect(sections.filter((anchor) => !contents.includes(`(#${anchor})`))).toEqual([]);
});
