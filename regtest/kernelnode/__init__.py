"""A regtest Bitcoin node on Bitcoin Core's consensus engine (py-bitcoinkernel) answering bitcoind's JSON-RPC.

A stand-in for `bitcoind -regtest` in development and tests where bitcoind is not installed: every block is
validated by the kernel's process_block, every mempool script check runs the kernel's interpreter.
"""
