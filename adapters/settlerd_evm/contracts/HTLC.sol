// SPDX-License-Identifier: MIT
pragma solidity 0.8.33;

/// @title HTLC: hash-time-locked swaps of native ETH and ERC-20 tokens, many swaps in one contract
/// @notice A swap pays `amount` of `token` (address(0) for native ETH) to `recipient` against the SHA-256
/// preimage of `hashlock` (the same hash as the Bitcoin leg), or back to `sender` once `timelock` has passed.
///
/// Time is `block.timestamp` in unix seconds. A swap can be claimed while `block.timestamp < timelock` and
/// refunded once `block.timestamp >= timelock`, so there is no instant at which both are possible. Block
/// proposers choose timestamps within a few seconds of real time; callers keep margins of minutes.
///
/// Storage is one slot per live swap. The slot number is the swap id,
/// `id = keccak256(abi.encode(token, sender, timelock, hashlock))` (a hash output cannot collide with
/// another slot, and the contract has no other state); the slot holds `recipient << 96 | amount`, so
/// amounts are limited to 2**96 - 1 base units (79 billion whole tokens at 18 decimals). Claim and refund
/// take token, sender and timelock in calldata and read recipient and amount from the slot; the `Locked`
/// event carries every term for watchers. The sender is part of the id, so nobody can block a lock by
/// front-running it with the same hashlock. A settled swap's slot is cleared (the gas refund keeps claim
/// and refund cheap); locking the same id again afterwards is a new deposit by the same sender.
///
/// Claim pays only the recorded recipient and refund only the recorded sender, whoever submits the
/// transaction. Fee-on-transfer tokens are refused at lock time (the contract must receive exactly
/// `amount`); tokens that return no bool from transfer functions are accepted. Rebasing tokens are not
/// supported: the contract cannot tell a rebase from a deposit.
contract HTLC {
    /// @notice What claim and refund are told about a swap besides the preimage or hashlock.
    struct Key {
        address token;
        address sender;
        uint256 timelock;
    }

    /// @notice One swap to open in a batch lock; the sender is the caller.
    struct NewSwap {
        address recipient;
        uint256 amount;
        bytes32 hashlock;
        uint256 timelock;
    }

    event Locked(
        bytes32 indexed hashlock,
        address token,
        address sender,
        address recipient,
        uint256 amount,
        uint256 timelock
    );
    event Claimed(bytes32 indexed hashlock, bytes32 id, bytes32 preimage);
    /// The id alone identifies the swap (watchers know it from Locked); one data word less keeps refunds cheap.
    event Refunded(bytes32 indexed id);

    /// A swap with this id (token, sender, timelock, hashlock) is already locked.
    error AlreadyLocked(bytes32 id);
    /// No locked swap has this id: never locked, already settled, or (on claim) a wrong preimage.
    error SwapNotActive(bytes32 id);
    /// Claim attempted at or after the timelock; only a refund is possible now.
    error ClaimExpired(bytes32 id, uint256 timelock);
    /// Refund attempted before the timelock; only a claim is possible until then.
    error RefundNotYetAllowed(bytes32 id, uint256 timelock);
    /// The timelock must lie in the future when locking.
    error TimelockInPast(uint256 timelock);
    /// Amounts are 1 .. 2**96 - 1 base units.
    error AmountOutOfRange(uint256 amount);
    error ZeroRecipient();
    /// msg.value (or a second array's length) differs from what the batch needs.
    error ValueMismatch(uint256 expected, uint256 received);
    /// The token moved a different amount than asked (fee-on-transfer or broken token); refused.
    error TokenAmountMismatch(address token, uint256 expected, uint256 received);
    /// A token call reverted or returned false, or the address holds no token.
    error TokenTransferFailed(address token);
    error EthTransferFailed(address to);

    uint256 private constant AMOUNT_BITS = 96;
    uint256 private constant MAX_AMOUNT = (1 << AMOUNT_BITS) - 1;

    function swapId(address token, address sender, uint256 timelock, bytes32 hashlock) public pure returns (bytes32) {
        return keccak256(abi.encode(token, sender, timelock, hashlock));
    }

    /// @notice Recipient and amount of live swap `id`; zeros before it is locked and after it is settled.
    function swaps(bytes32 id) external view returns (address recipient, uint256 amount) {
        uint256 v = _load(id);
        return (address(uint160(v >> AMOUNT_BITS)), v & MAX_AMOUNT);
    }

    // ----------------------------------------------------------------------------------------- lock

    function lockEth(address recipient, bytes32 hashlock, uint256 timelock) external payable returns (bytes32 id) {
        id = _open(address(0), recipient, msg.value, hashlock, timelock);
    }

    function lockToken(address token, address recipient, uint256 amount, bytes32 hashlock, uint256 timelock)
        external
        returns (bytes32 id)
    {
        id = _open(token, recipient, amount, hashlock, timelock);
        _pull(token, amount);
    }

    function lockEthMany(NewSwap[] calldata batch) external payable {
        uint256 total;
        for (uint256 i; i < batch.length; ++i) {
            NewSwap calldata s = batch[i];
            _open(address(0), s.recipient, s.amount, s.hashlock, s.timelock);
            total += s.amount;
        }
        if (total != msg.value) revert ValueMismatch(total, msg.value);
    }

    /// @notice Locks several swaps of one token with a single transferFrom of the total.
    function lockTokenMany(address token, NewSwap[] calldata batch) external {
        uint256 total;
        for (uint256 i; i < batch.length; ++i) {
            NewSwap calldata s = batch[i];
            _open(token, s.recipient, s.amount, s.hashlock, s.timelock);
            total += s.amount;
        }
        _pull(token, total);
    }

    // ---------------------------------------------------------------------------------------- claim

    function claim(Key calldata k, bytes32 preimage) external {
        (address to, uint256 amount) = _claim(k, preimage);
        _pay(k.token, to, amount);
    }

    /// @notice Claims several swaps; consecutive swaps paying the same token to the same recipient are
    /// paid out with one transfer.
    function claimMany(Key[] calldata batch, bytes32[] calldata preimages) external {
        uint256 n = batch.length;
        if (preimages.length != n) revert ValueMismatch(n, preimages.length);
        address token;
        address to;
        uint256 pending;
        for (uint256 i; i < n; ++i) {
            Key calldata k = batch[i];
            (address recipient, uint256 amount) = _claim(k, preimages[i]);
            if (k.token != token || recipient != to) {
                _pay(token, to, pending);
                (token, to, pending) = (k.token, recipient, 0);
            }
            pending += amount;
        }
        _pay(token, to, pending);
    }

    // --------------------------------------------------------------------------------------- refund

    function refund(Key calldata k, bytes32 hashlock) external {
        _pay(k.token, k.sender, _refund(k, hashlock));
    }

    /// @notice Refunds several swaps; consecutive swaps returning the same token to the same sender are
    /// paid out with one transfer.
    function refundMany(Key[] calldata batch, bytes32[] calldata hashlocks) external {
        uint256 n = batch.length;
        if (hashlocks.length != n) revert ValueMismatch(n, hashlocks.length);
        address token;
        address to;
        uint256 pending;
        for (uint256 i; i < n; ++i) {
            Key calldata k = batch[i];
            uint256 amount = _refund(k, hashlocks[i]);
            if (k.token != token || k.sender != to) {
                _pay(token, to, pending);
                (token, to, pending) = (k.token, k.sender, 0);
            }
            pending += amount;
        }
        _pay(token, to, pending);
    }

    // ------------------------------------------------------------------------------------- internals

    function _open(address token, address recipient, uint256 amount, bytes32 hashlock, uint256 timelock)
        private
        returns (bytes32 id)
    {
        // One comparison for 1 <= amount <= MAX_AMOUNT: a zero amount wraps to the largest uint256.
        unchecked {
            if (amount - 1 >= MAX_AMOUNT) revert AmountOutOfRange(amount);
        }
        if (recipient == address(0)) revert ZeroRecipient();
        if (timelock <= block.timestamp) revert TimelockInPast(timelock);
        bytes4 alreadyLocked = AlreadyLocked.selector;
        bytes32 lockedTopic = Locked.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, token)
            mstore(add(m, 0x20), caller())
            mstore(add(m, 0x40), timelock)
            mstore(add(m, 0x60), hashlock)
            id := keccak256(m, 0x80)
            if sload(id) {
                mstore(0x00, alreadyLocked)
                mstore(0x04, id)
                revert(0x00, 0x24)
            }
            sstore(id, or(shl(AMOUNT_BITS, recipient), amount))
            // `emit Locked(hashlock, token, msg.sender, recipient, amount, timelock)`, with the event data laid
            // over the id's preimage: token and sender are in place, the other three words are overwritten.
            mstore(add(m, 0x40), recipient)
            mstore(add(m, 0x60), amount)
            mstore(add(m, 0x80), timelock)
            log2(m, 0xa0, lockedTopic, hashlock)
        }
    }

    function _claim(Key calldata k, bytes32 preimage) private returns (address recipient, uint256 amount) {
        bytes32 hashlock;
        assembly ("memory-safe") {
            mstore(0x00, preimage)
            // The SHA-256 precompile only fails when out of gas.
            if iszero(staticcall(gas(), 0x02, 0x00, 0x20, 0x00, 0x20)) { revert(0, 0) }
            hashlock := mload(0x00)
        }
        (bytes32 id, uint256 v) = _settle(k, hashlock);
        if (block.timestamp >= k.timelock) revert ClaimExpired(id, k.timelock);
        emit Claimed(hashlock, id, preimage);
        return (address(uint160(v >> AMOUNT_BITS)), v & MAX_AMOUNT);
    }

    function _refund(Key calldata k, bytes32 hashlock) private returns (uint256 amount) {
        (bytes32 id, uint256 v) = _settle(k, hashlock);
        if (block.timestamp < k.timelock) revert RefundNotYetAllowed(id, k.timelock);
        emit Refunded(id);
        return v & MAX_AMOUNT;
    }

    /// Clears the swap's slot (settle once) and returns what it held; the caller checks the time and pays.
    function _settle(Key calldata k, bytes32 hashlock) private returns (bytes32 id, uint256 v) {
        // Key is three static words in calldata, in swapId's order; the hashlock follows them.
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, k, 0x60)
            mstore(add(m, 0x60), hashlock)
            id := keccak256(m, 0x80)
        }
        v = _load(id);
        if (v == 0) revert SwapNotActive(id);
        assembly ("memory-safe") {
            sstore(id, 0)
        }
    }

    function _load(bytes32 id) private view returns (uint256 v) {
        assembly ("memory-safe") {
            v := sload(id)
        }
    }

    function _pay(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        bool ok;
        if (token == address(0)) {
            assembly ("memory-safe") {
                ok := call(gas(), to, amount, 0, 0, 0, 0)
            }
            if (!ok) revert EthTransferFailed(to);
        } else {
            // The token answered balanceOf and moved exactly `amount` at lock time, so it has code.
            assembly ("memory-safe") {
                let m := mload(0x40)
                mstore(m, shl(224, 0xa9059cbb)) // transfer(address,uint256)
                mstore(add(m, 0x04), to)
                mstore(add(m, 0x24), amount)
                let success := call(gas(), token, 0, m, 0x44, 0x00, 0x20)
                // Success, and either no return data (tokens without a bool) or a true bool.
                ok := and(success, or(iszero(returndatasize()), and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1))))
            }
            if (!ok) revert TokenTransferFailed(token);
        }
    }

    /// Pulls `amount` from the caller and refuses tokens that deliver less (fee on transfer): the contract's
    /// balance must grow by exactly `amount`, so a short-paying token can never eat into other swaps.
    function _pull(address token, uint256 amount) private {
        bool ok;
        uint256 received;
        assembly ("memory-safe") {
            // balanceOf(this) stays in scratch space for both reads; answers land past the call data.
            mstore(0x00, shl(224, 0x70a08231)) // balanceOf(address)
            mstore(0x04, address())
            let m := mload(0x40)
            let out := add(m, 0x80)
            // Yul evaluates arguments right to left: each call is its own statement, before returndatasize.
            ok := staticcall(gas(), token, 0x00, 0x24, out, 0x20)
            ok := and(ok, gt(returndatasize(), 0x1f)) // no answer: no token contract at that address
            let before := mload(out)
            mstore(m, shl(224, 0x23b872dd)) // transferFrom(address,address,uint256)
            mstore(add(m, 0x04), caller())
            mstore(add(m, 0x24), address())
            mstore(add(m, 0x44), amount)
            ok := and(call(gas(), token, 0, m, 0x64, out, 0x20), ok)
            // Success, and either no return data (tokens without a bool) or a true bool.
            ok := and(ok, or(iszero(returndatasize()), and(gt(returndatasize(), 0x1f), eq(mload(out), 1))))
            ok := and(staticcall(gas(), token, 0x00, 0x24, out, 0x20), ok)
            ok := and(ok, gt(returndatasize(), 0x1f))
            // Wraps on a shrinking balance, which the comparison below refuses like any other shortfall.
            received := sub(mload(out), before)
        }
        if (!ok) revert TokenTransferFailed(token);
        if (received != amount) revert TokenAmountMismatch(token, amount, received);
    }
}
