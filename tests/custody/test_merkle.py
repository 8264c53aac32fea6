"""RFC 9162 Merkle hashing and proofs, checked against the Certificate Transparency test vectors."""

from __future__ import annotations

import hashlib

import pytest

from redactd.custody.merkle import (
    EMPTY_ROOT,
    Frontier,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves and tree heads used by every RFC 6962 implementation's tests.
CT_LEAVES = [bytes.fromhex(h) for h in
             ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
CT_TREE = MerkleTree([leaf_hash(x) for x in CT_LEAVES])
LEAVES = [leaf_hash(i.to_bytes(2, "big")) for i in range(37)]
TREE = MerkleTree(LEAVES)


class TestMerkleHashing:
    def test_empty_tree_root_is_sha256_of_nothing(self) -> None:
        assert EMPTY_ROOT == hashlib.sha256(b"").digest() == MerkleTree([]).root()

    @pytest.mark.parametrize("size", range(1, 9))
    def test_roots_match_the_rfc_6962_test_vectors(self, size: int) -> None:
        assert CT_TREE.root(size).hex() == CT_ROOTS[size - 1]

    def test_streaming_frontier_gives_the_same_root_at_every_size(self) -> None:
        frontier = Frontier()
        assert frontier.root() == EMPTY_ROOT
        for n, leaf in enumerate(LEAVES, 1):
            frontier.add(leaf)
            assert frontier.root() == TREE.root(n)


class TestInclusionProofs:
    @pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
    def test_proofs_match_the_test_vectors_and_verify(self, index: int, size: int, proof: list[str]) -> None:
        assert [h.hex() for h in CT_TREE.inclusion_proof(index, size)] == proof
        assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, [bytes.fromhex(h) for h in proof],
                                bytes.fromhex(CT_ROOTS[size - 1]))

    def test_every_leaf_verifies_in_every_tree_size(self) -> None:
        for size in range(1, len(LEAVES) + 1):
            root = TREE.root(size)
            for index in range(size):
                assert verify_inclusion(LEAVES[index], index, size, TREE.inclusion_proof(index, size), root)

    def test_a_proof_fails_for_another_leaf_index_size_or_root(self) -> None:
        proof = TREE.inclusion_proof(11, 30)
        root = TREE.root(30)
        assert not verify_inclusion(LEAVES[12], 11, 30, proof, root)
        assert not verify_inclusion(LEAVES[11], 10, 30, proof, root)
        # (a proof does not bind the tree size by itself: neighbouring sizes of the same shape pass;
        # the signed checkpoint binds size and root together)
        assert not verify_inclusion(LEAVES[11], 11, 12, proof, root)
        assert not verify_inclusion(LEAVES[11], 11, 64, proof, root)
        assert not verify_inclusion(LEAVES[11], 11, 30, proof, TREE.root(29))
        assert not verify_inclusion(LEAVES[11], 11, 30, proof[:-1], root)
        assert not verify_inclusion(LEAVES[11], 11, 30, [*proof, root], root)
        assert not verify_inclusion(LEAVES[11], 30, 30, proof, root)


class TestConsistencyProofs:
    def test_every_old_size_is_proven_a_prefix_of_every_new_size(self) -> None:
        for new in range(1, len(LEAVES) + 1):
            for old in range(new + 1):
                proof = TREE.consistency_proof(old, new)
                assert verify_consistency(old, new, TREE.root(old), TREE.root(new), proof), (old, new)

    def test_a_rewritten_history_does_not_extend_the_old_tree(self) -> None:
        rewritten = MerkleTree(LEAVES[:9] + [leaf_hash(b"forged")] + LEAVES[10:])
        for old in (5, 8, 12, 16, 20):
            proof = rewritten.consistency_proof(old, 30)
            assert verify_consistency(old, 30, rewritten.root(old), rewritten.root(30), proof)
            assert not verify_consistency(old, 30, TREE.root(old), rewritten.root(30), proof) or old <= 9

    def test_a_proof_fails_with_the_wrong_sizes_or_a_dropped_hash(self) -> None:
        proof = TREE.consistency_proof(13, 29)
        assert not verify_consistency(12, 29, TREE.root(13), TREE.root(29), proof)
        assert not verify_consistency(13, 33, TREE.root(13), TREE.root(29), proof)
        assert not verify_consistency(13, 29, TREE.root(13), TREE.root(29), proof[1:])
        assert not verify_consistency(13, 29, TREE.root(13), TREE.root(29), [])
        assert not verify_consistency(29, 13, TREE.root(29), TREE.root(13), proof)
