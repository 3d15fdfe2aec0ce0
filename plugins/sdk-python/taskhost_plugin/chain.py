"""EVM JSON-RPC on the chains the config grants. Amounts are decimal
strings; hashes and addresses 0x-hex."""

import json
from typing import Any, List, Optional

from wit_world.imports import chain as _chain
from wit_world.imports.chain import Receipt, Transaction, TransferLog

from .errors import call

__all__ = ["Receipt", "Transaction", "TransferLog"]


def rpc(chain: str, method: str, params: Any = ()) -> Any:
    """Any JSON-RPC method; ``params`` and the result are Python values."""
    return json.loads(call(_chain.rpc, chain, method, json.dumps(list(params))))


def block_number(chain: str) -> int:
    return call(_chain.block_number, chain)


def get_transaction(chain: str, hash: str) -> Optional[Transaction]:
    return call(_chain.get_transaction, chain, hash)


def get_receipt(chain: str, hash: str) -> Optional[Receipt]:
    return call(_chain.get_receipt, chain, hash)


def confirmations(chain: str, hash: str) -> int:
    return call(_chain.confirmations, chain, hash)


def required_confirmations(chain: str) -> int:
    return call(_chain.required_confirmations, chain)


def balance(chain: str, address: str) -> str:
    return call(_chain.balance, chain, address)


def erc20_transfers(chain: str, token: str, to: str, from_block: int, to_block: int) -> List[TransferLog]:
    return call(_chain.erc20_transfers, chain, token, to, from_block, to_block)
