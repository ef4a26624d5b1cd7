"""Dynamics analysis: Lyapunov spectra, adjoints, fixed points, SVCCA (issue: PTA/analysis)."""
