"""Registers the non-fastMRI readers (ISMRMRD, BART, NumPy, MATLAB, TWIX)."""
