const solc = require('solc');
const fs = require('fs');
const input = {
  language: 'Solidity',
  sources: { 'TestToken.sol': { content: fs.readFileSync('TestToken.sol', 'utf8') } },
  settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'paris',
    outputSelection: { '*': { '*': ['evm.bytecode.object'] } } },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
if (out.errors) for (const e of out.errors) { console.error(e.formattedMessage); if (e.severity === 'error') process.exit(1); }
console.error('solc ' + solc.version());
process.stdout.write('0x' + out.contracts['TestToken.sol'].TestToken.evm.bytecode.object + '\n');
