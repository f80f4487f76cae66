"""What several training tests share: one optimiser step of a minipool model beside its
PyTorch twin, and the offline-download failure every dataset must explain."""
import os

import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool.data import DatasetNotFoundError


def step_side_by_side(torch, ours, opt, theirs, topt, x, y):
    """One step of cross entropy on the batch (x, y): minipool's ``ours`` with ``opt``, then
    PyTorch's ``theirs`` (a callable on a torch tensor) with ``topt``; returns both losses."""
    loss = F.cross_entropy(ours(mp.tensor(x)), mp.tensor(y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    topt.zero_grad()
    tloss.backward()
    topt.step()
    return loss.item(), tloss.item()


def check_offline_download_fails_with_instructions(load, cache):
    """``load(cache)`` (a dataset with download=True whose URL cannot be reached, 127.0.0.1:9)
    raises DatasetNotFoundError saying the download failed, where to copy the files and
    leaves ``cache`` empty."""
    with pytest.raises(DatasetNotFoundError) as info:
        load(cache)
    message = str(info.value)
    assert "Download failed" in message and "127.0.0.1:9" in message
    assert str(cache) in message and "copy" in message and "--download (" not in message
    assert os.listdir(cache) == [], "partial downloads must be removed"
