// This file holds the part-number rules, the same for every store. It has no
// state.

package objstore

import "fmt"

// checkPartNumber refuses a part number outside 1..MaxPartNumber.
func checkPartNumber(n int) error {
	if n < 1 || n > MaxPartNumber {
		return fmt.Errorf("%w: part number %d outside 1..%d", ErrInvalidPart, n, MaxPartNumber)
	}
	return nil
}

// checkPartList refuses an empty part list, or one whose numbers are out of
// range or not strictly ascending.
func checkPartList(parts []Part) error {
	if len(parts) == 0 {
		return fmt.Errorf("%w: no parts", ErrInvalidPart)
	}
	for i, p := range parts {
		if err := checkPartNumber(p.Number); err != nil {
			return err
		}
		if i > 0 && p.Number <= parts[i-1].Number {
			return fmt.Errorf("%w: part %d after part %d (parts must be in ascending order, each once)", ErrInvalidPart, p.Number, parts[i-1].Number)
		}
	}
	return nil
}
