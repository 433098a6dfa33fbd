# pragma version ~=0.4.3
"""
@title ownable
@license MIT
@notice One owner per contract, who may hand the role on. The contracts that use it
        `initializes: ownable` and export `owner` and `transfer_ownership`.
@dev Written for perpsim after snekmate's `auth/ownable.vy` (AGPL-3.0, not copied): the
     same surface and revert reasons, without renouncing.
"""

# ---------------------------------------------------------------- STORAGE
owner: public(address)  # may call the owner-only functions of the contract that initializes this

# ---------------------------------------------------------------- EVENTS
event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


@deploy
def __init__():
    """
    @notice The deployer is the first owner.
    """
    self._transfer_ownership(msg.sender)


@external
def transfer_ownership(new_owner: address):
    """
    @notice Hand the owner's role to `new_owner`. Only the owner.
    @param new_owner The next owner; not the zero address.
    """
    self._check_owner()
    assert new_owner != empty(address), "ownable: new owner is the zero address"
    self._transfer_ownership(new_owner)


# ================================================================ INTERNAL
@view
@internal
def _check_owner():
    """
    @notice Revert unless the caller is the owner.
    """
    assert msg.sender == self.owner, "ownable: caller is not the owner"


@internal
def _transfer_ownership(new_owner: address):
    """
    @notice Make `new_owner` the owner and log the change; no checks.
    @param new_owner The next owner.
    """
    previous: address = self.owner
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=previous, new_owner=new_owner)
