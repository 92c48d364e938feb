/**
 * Every option of every public option type says its default in JSDoc (`@default`), so an editor
 * shows it where the option is written. Read from the types src/index.ts exports, with
 * the options they inherit (`queueName` and `prefix` from QueueNames).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { REPO_ROOT } from '../helpers/doc-blocks.ts';

/** Exported types that are options a user passes; `...Options` ones are found by name. */
const ALSO_OPTION_TYPES = ['EnqueueInput', 'QueueNames'];

describe('public option types', () => {
  it('document a @default on every optional property', () => {
    const index = join(REPO_ROOT, 'src', 'index.ts');
    const program = ts.createProgram([index], {
      allowImportingTsExtensions: true,
      noEmit: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      skipLibCheck: true,
    });
    const checker = program.getTypeChecker();
    const module = checker.getSymbolAtLocation(program.getSourceFile(index) as ts.SourceFile) as ts.Symbol;
    const checked: string[] = [];
    const problems: string[] = [];
    for (const exported of checker.getExportsOfModule(module)) {
      const name = exported.getName();
      if (!name.endsWith('Options') && !ALSO_OPTION_TYPES.includes(name)) continue;
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      if (!(symbol.flags & ts.SymbolFlags.Interface)) continue;
      checked.push(name);
      for (const property of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol))) {
        if (!(property.flags & ts.SymbolFlags.Optional)) continue;
        if (!property.getJsDocTags(checker).some((tag) => tag.name === 'default'))
          problems.push(`${name}.${property.getName()}`);
      }
    }
    assert.ok(
      checked.includes('ProducerOptions') && checked.includes('WorkerOptions'),
      `checked only ${checked}`,
    );
    assert.deepEqual(problems, [], 'options without a @default in their JSDoc');
  });
});
